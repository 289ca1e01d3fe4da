"""Which test runs each command the README and docs/ show (tests/docs/commands.py says
how commands are read, and how a page marks one that no test runs).

Each entry names where the command runs, as `path::name` (a test function, a helper
the test calls, or the table a parametrized test reads) or a file CI executes, and
`shows`: text of that source which is the command being run, or its request. Where the
test runs it otherwise than the page shows it (through `python -m extproc` or
extproc.cli.main rather than `.venv/bin/tollgate`, against a stand-in), `note` says how.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """Where a command shown in the documentation is run."""

    test: str
    shows: str
    note: str = ""


# The quickstart's tour, run as printed from a fresh checkout with its ports moved.
TOUR = "tests/quickstart/test_tour.py"
UP = f"{TOUR}::test_a_fresh_checkout_in_a_closed_folder_runs_and_its_tour_does_what_it_says"
HELD = f"{TOUR}::http_part"
APPROVE = f"{TOUR}::approve_the_delete"
PRINTED = "the line `tollgate up` prints, on the port it moved to"
TOKEN = Run("tests/quickstart/test_dev_tokens.py::"
            "test_prints_one_token_the_quickstart_jwks_verifies",
            '"--sub", "alice", "--groups"', "as extproc.cli.main([\"token\", ...]), other names")
EGRESS = "tests/egress/test_egress_e2e.py"
ROLES = "tests/e2e/test_database_roles_e2e.py"
K8S = "tests/e2e/test_k8s_e2e.py"
AGENT = Run("tests/e2e/test_autogen_e2e.py::"
            "test_the_agent_sees_masked_data_and_the_reason_of_a_refusal",
            "run_example(quickstart, script, token)",
            "the Makefile's recipe: the example with a token of its own (agent.py, ag2_agent.py)")
REFUSED_CURL = Run(f"{EGRESS}::test_curl_shows_the_reason_of_a_refused_tunnel",
                   'curl(gw, "https://meta.test/latest/meta-data/")',
                   "curl -v through the proxy, a name resolving to the metadata address; "
                   "the x-tollgate headers read from its output")
# The README's SSH section: batch scp and sftp with `tollgate ssh login`'s certificate.
BATCH = ("tests/e2e/test_ssh_batch_certificate_e2e.py::"
         "test_batch_scp_and_sftp_log_in_with_the_certificate")
SSH_LOGIN_OPTIONS = ("-i ~/.tollgate/ssh-login/id_ed25519 -o IdentitiesOnly=yes "
                     "-o UserKnownHostsFile=~/.tollgate/ssh-login/id_ed25519-known_hosts")
README_EGRESS = Run("tests/egress/test_readme_egress_e2e.py::"
                    "test_the_readme_egress_example_is_answered_by_the_proxy",
                    "run_as_shown(gw, shown, tmp_path)",
                    "the README's block itself, run by bash, Envoy's egress port for 3128")
# Envoy's bootstrap written for a config (issue 44).
BOOTSTRAP = "tests/test_envoy_bootstrap_command.py"
EVERY_KIND = f"{BOOTSTRAP}::test_a_config_of_every_kind_gets_its_listeners_clusters_and_routes"
SESSIONS = "tests/cli/test_audit_sessions.py"
LIVE = "tests/e2e/test_live_sessions_e2e.py"
ATTACH = "tests/e2e/test_live_attach_e2e.py"
DROP = ('curl -i -X POST http://127.0.0.1:10000/sql -H "authorization: Bearer $TOKEN" '
        "-H 'content-type: application/json' -d '{\"sql\": \"DROP TABLE customers\"}'")

REGISTRY: dict[str, Run] = {
    # The two commands.
    "make run": Run(UP, '["make", "run", f"ARGS=--base-port {base}"]',
                    "with ARGS moving every port, in a checkout only its owner may enter"),
    "make test": Run(".ci/run", "make test", "CI runs it on every change"),
    ".venv/bin/tollgate up --base-port 20000": Run(
        UP, '[tollgate, "up", "--base-port", str(base)]',
        "from the first of a free run of ports"),
    # HTTP, and the quickstart's tour.
    "export TOKEN=$(.venv/bin/tollgate token --sub you --groups agents)": TOKEN,
    "export TOLLGATE_TOKEN=$(.venv/bin/tollgate token --sub dana --groups dba)": TOKEN,
    'curl -i http://127.0.0.1:10000/api/customers -H "authorization: Bearer $TOKEN"':
        Run(HELD, 'tour.take(r"/api/customers")', PRINTED),
    DROP: Run("tests/e2e/test_e2e.py::"
              "test_drop_table_is_denied_with_reason_and_never_reaches_upstream",
              '{"sql": "DROP TABLE customers"}', "the same request, to a test gateway"),
    "curl -i -X POST http://127.0.0.1:10000/sql -H \"authorization: Bearer $TOKEN\" "
    "-H 'content-type: application/json' -d '{\"sql\": \"SELECT 1; DrOp/**/TABLE customers\"}'":
        Run(f"{EGRESS}::test_plain_http_to_a_destination_target_is_read_decided_and_masked_as_that_target",
            '\'{"sql": "SELECT 1; DrOp/**/TABLE customers"}\'',
            "curl with this body to a SQL target, reached through the egress proxy"),
    "curl -i http://127.0.0.1:10000/echo": Run(HELD, r'tour.take(r"/echo\s*$")', PRINTED),
    "curl -i -X POST http://127.0.0.1:10000/sql -H \"authorization: Bearer $TOKEN\" "
    "-H 'content-type: application/json' -d '{\"sql\": \"DELETE FROM customers\"}'":
        Run(HELD, 'tour.take(r"DELETE FROM customers")', PRINTED),
    ".venv/bin/tollgate approvals list": Run(APPROVE, 'tour.take(r"approvals list")', PRINTED),
    '.venv/bin/tollgate approvals approve <ID> --reason "cleanup"':
        Run(APPROVE, 'tour.take(r"approvals approve <ID>")', "the printed line, its own reason"),
    ".venv/bin/tollgate audit search --since 1h":
        Run("tests/cli/test_audit_cli.py::test_search_filters_by_identity_target_action_and_since",
            'audit(mixed, "search", "--since", "1h")'),
    ".venv/bin/tollgate audit verify":
        Run("tests/cli/test_audit_cli.py::test_verify_an_intact_store_exits_0_and_describes_each_chain",
            '"verify"'),
    # LLM and agents.
    "make autogen": AGENT,
    "make ag2": AGENT,
    "make mcp-agent": Run(
        "tests/e2e/test_autogen_e2e.py::test_the_mcp_agent_sees_masked_tools_and_the_refusals_of_either_side",
        'run_example(quickstart, "mcp_agent.py", token)', "the Makefile's recipe"),
    # MCP.
    "curl -X POST http://127.0.0.1:10081/demo/rug-pull": Run(
        "tests/quickstart/test_demo_mcp.py::test_the_rug_pull_switch_changes_the_listed_definition",
        "http.post(server.rug_pull_url)", "the same POST, httpx"),
    # PostgreSQL.
    'PGPASSWORD=$TOKEN pg_dump "postgresql://you@127.0.0.1:15432/shop?sslmode=require" > '
    "shop.sql": Run("tests/e2e/test_postgres_dump_e2e.py::"
                    "test_a_dbas_dump_is_whole_masked_and_recorded",
                    'pg_dump(gw, "dba-dump", DBA)',
                    "pg_dump with the token in PGPASSWORD, to a test gateway"),
    "tollgate db grants orders-db --config tollgate.yaml --read "
    "tollgate_agent=orders,customers --write tollgate_agent=orders --read "
    "tollgate_dba=orders,customers --write tollgate_dba=orders,customers > grants.sql": Run(
        f"{ROLES}::pg", '"db", "grants", "shop-pg", "--config"',
        "python -m extproc, for the test cluster's target and its one table"),
    "psql -d orders -f grants.sql": Run(
        f"{ROLES}::pg", '"-v", "ON_ERROR_STOP=1"',
        "the SQL on psql's stdin, as the test cluster's superuser"),
    'psql "postgresql://you:$TOKEN@127.0.0.1:15432/shop?sslmode=require"':
        Run(f"{TOUR}::psql_part", 'r"^psql "', PRINTED),
    # MySQL.
    "tollgate db grants shop-db --config tollgate.yaml --host 10.0.0.% --read "
    "tollgate_agent=customers,orders --write tollgate_agent=orders > grants.sql": Run(
        f"{ROLES}::test_tollgate_db_grants_sets_a_mariadb_server_up",
        '"db", "grants", "shop-db", "--config"',
        "python -m extproc, the host 127.0.0.1 and one role of the test's own"),
    "MYSQL_PWD=$TOKEN mariadb-dump -h 127.0.0.1 -P 13306 -u you --ssl "
    "--skip-ssl-verify-server-cert --no-tablespaces shop > shop.sql": Run(
        "tests/e2e/test_mysql_dump_e2e.py::test_a_dbas_dump_is_whole_masked_and_recorded",
        'dump(gw, shop, "dba-mydump", DBA)',
        "mariadb-dump with the token in MYSQL_PWD, to a test gateway"),
    "mariadb -u root < grants.sql": Run(
        f"{ROLES}::test_tollgate_db_grants_sets_a_mariadb_server_up",
        "subprocess.run([*ROOT], input=printed", "the SQL on the client's stdin"),
    "MYSQL_PWD=$TOKEN mariadb -h 127.0.0.1 -P 13306 -u you -D shop "
    "--ssl-ca=$HOME/.tollgate/mysql/server.pem --ssl-verify-server-cert": Run(
        f"{TOUR}::mariadb_part", r'r"^MYSQL_PWD=\$TOKEN mariadb "',
        "the lines `tollgate up` prints: these, on the port it moved to, $HOME expanded"),
    "MYSQL_PWD=$TOKEN mariadb -h 127.0.0.1 -P 13306 -u you --ssl "
    "--skip-ssl-verify-server-cert -D shop": Run(
        "tests/e2e/test_mysql_e2e.py::cli", '"--ssl", "--skip-ssl-verify-server-cert"',
        "the same client and options (MYSQL_PWD the token), on a test gateway's port"),
    # SSH.
    "ssh -o UserKnownHostsFile=~/.tollgate/ssh/known_hosts -p 2222 demo-host@127.0.0.1 "
    "'cat settings.conf'": Run(f"{TOUR}::ssh_part",
                               """tour.take(r"^ssh -o .* 'cat settings.conf'")""", PRINTED),
    "ssh ... demo-host@127.0.0.1 'cat .env'": Run(
        "tests/policy/test_credential_paths_bypass.py::CAUGHT", 'ssh("cat .env", "line")',
        "the default pack's decision on it, as the SSH front asks it"),
    "ssh ... demo-host@127.0.0.1 'rm -rf *'": Run(
        f"{TOUR}::ssh_part",
        '"126 tollgate: refused: destructive command: rm -rf *"',
        "run by the asyncssh snippet `tollgate up` prints"),
    "ssh ... demo-host@127.0.0.1 'sudo systemctl restart nginx'": Run(
        "tests/e2e/test_ssh_e2e.py::test_sudo_waits_for_an_approval_then_runs", "sudo -n true",
        "another sudo: the hold and its approval"),
    "ssh -t ... demo-host@127.0.0.1": Run(
        "tests/e2e/test_ssh_e2e.py::test_openssh_interactive_session_with_a_forced_terminal",
        '"ssh", "-tt"'),
    "TOLLGATE_TOKEN=$TOKEN .venv/bin/tollgate ssh login": Run(
        "tests/cli/test_ssh_login.py::test_the_printed_command_logs_in_with_the_certificate",
        '"--token", tokens.token("svc-autogen", ttl=600)', "the token given by --token"),
    f"scp {SSH_LOGIN_OPTIONS} -P 2222 demo-host@127.0.0.1:settings.conf .": Run(
        BATCH, '"scp", *options', "a file of the test's host; the key's path spelt out"),
    f"sftp -b batch.txt {SSH_LOGIN_OPTIONS} -P 2222 demo-host@127.0.0.1": Run(
        BATCH, '"sftp", "-b", str(batch), *options',
        "a `get` of the test's file; the key's path spelt out"),
    # Egress.
    "export http_proxy=http://agent:$TOKEN@127.0.0.1:3128": README_EGRESS,
    "export https_proxy=$http_proxy HTTPS_PROXY=$http_proxy HTTP_PROXY=$http_proxy":
        README_EGRESS,
    "curl -si http://169.254.169.254/latest/meta-data/": REFUSED_CURL,
    "curl -sIv https://example.com/ 2>&1 | grep '< x-tollgate'": REFUSED_CURL,
    # Kubernetes: the real kubectl against the API server's stand-in.
    "kubectl get pods -n prod": Run(
        f"{K8S}::test_an_agent_lists_pods_with_the_clusters_token_injected",
        'agent("get", "pods", "-n", "prod")'),
    "kubectl exec web-1 -n staging -- ls /": Run(
        f"{K8S}::test_an_agent_may_exec_into_staging",
        'agent("exec", "web-1", "-n", "staging", "--", "ls", "/")'),
    "kubectl exec web-1 -n prod -- rm -rf /": Run(
        f"{K8S}::test_kubectl_exec_rm_rf_into_production_is_refused_on_both_transports",
        'agent("exec", "web-1", "-n", "prod", "--", "rm", "-rf", "/")'),
    "kubectl get secrets -n staging": Run(
        f"{K8S}::test_an_agent_cannot_read_secrets", 'agent("get", "secrets", "-n", "staging")'),
    # Policies.
    "tollgate policy test [DIR]": Run(
        "tests/cli/test_policy_cli.py::test_the_pack_passes_with_one_line_per_test",
        'tollgate("test")'),
    "tollgate policy eval --input input.json": Run(
        "tests/cli/test_policy_cli.py::test_eval_drop_table_is_denied_and_names_the_rules_that_fired",
        'tollgate("eval", "--input"'),
    "tollgate policy test --run 'drop|truncate'": Run(
        "tests/cli/test_policy_cli.py::test_run_selects_tests_by_full_name",
        '"--run"', "another pattern"),
    "tollgate policy test --split-inputs impersonating.json": Run(
        "tests/policy/test_split.py::test_policy_test_names_the_path_a_reads_list_misses",
        '"--split-inputs"', "the pack's reads with a path taken out"),
    "tollgate policy eval --input drop.json": Run(
        "tests/cli/test_policy_cli.py::test_eval_drop_table_is_denied_and_names_the_rules_that_fired",
        'tollgate("eval", "--input"'),
    # Live sessions (docs/operators/live-sessions.md), through python -m extproc with the
    # test's own identities and session ids.
    "tollgate sessions list --identity svc-etl": Run(
        f"{LIVE}::test_list_shows_each_fronts_session_with_its_id_first",
        '"list", "--identity", sub'),
    'tollgate sessions end 5f0c… --reason "exfiltration" --lock 30m': Run(
        f"{LIVE}::test_end_with_lock_ends_the_session_and_locks_its_identity",
        '"--reason", "exfiltration"'),
    'tollgate sessions end 9a31… --reason "too busy" --no-lock': Run(
        f"{LIVE}::test_the_cli_locks_out_by_default_and_no_lock_lets_the_client_reconnect",
        '"--reason", "too busy",'),
    'tollgate sessions lock --identity svc-etl --for 1h --reason "leaked token"': Run(
        f"{LIVE}::test_a_lock_ends_open_sessions_refuses_new_ones_on_every_front_until_unlocked",
        '"lock", "--identity", sub, "--for", "1h", "--reason"'),
    "tollgate sessions locks": Run(
        f"{LIVE}::test_a_lock_ends_open_sessions_refuses_new_ones_on_every_front_until_unlocked",
        'sessions_cli(gw, "locks")'),
    'tollgate sessions unlock --identity svc-etl --reason "rotated"': Run(
        f"{LIVE}::test_a_lock_ends_open_sessions_refuses_new_ones_on_every_front_until_unlocked",
        '"unlock", "--identity", sub, "--reason", "rotated"'),
    "tollgate sessions watch 5f0c…": Run(
        f"{ATTACH}::test_watch_shows_psql_statements_within_a_second_masked_as_recorded",
        'Watch(gw, session["session_id"], token=VIEWER)'),
    "tollgate sessions join 9a31…": Run(
        f"{ATTACH}::test_a_joined_moderator_types_lines_decided_and_recorded_with_the_typist",
        'command="join"'),
    # Approvals, from the approver's side.
    "export TOLLGATE_TOKEN=...": Run(HELD, 'tour.take(r"^export TOLLGATE_TOKEN=")', PRINTED),
    "tollgate approvals list [--status pending] [--json]": Run(
        "tests/e2e/test_approvals_e2e.py::test_an_agents_terminal_tricks_reach_the_approver_inert",
        'cli(gw, "list")'),
    "tollgate approvals show ap-6f1d2c3b4a5e6d7c": Run(
        "tests/e2e/test_approvals_e2e.py::test_an_agents_terminal_tricks_reach_the_approver_inert",
        'cli(gw, "show", approval["id"])'),
    'tollgate approvals approve ap-6f1d2c3b4a5e6d7c --reason "cleanup ticket 42"': Run(
        "tests/e2e/test_approvals_e2e.py::test_a_held_delete_approved_with_the_cli_completes_with_200",
        '"--reason", "cleanup ticket 42"'),
    'tollgate approvals deny ap-6f1d2c3b4a5e6d7c --reason "not during the freeze"': Run(
        "tests/e2e/test_approvals_e2e.py::test_a_held_write_denied_gets_403_and_never_runs",
        '"--reason", "not during the freeze"'),
    # The audit record.
    "tollgate audit replay TRACE_ID": Run(
        "tests/cli/test_audit_cli.py::test_replay_a_trace_id_shows_every_record_of_the_trace",
        'audit(run, "replay", f"{7:032x}")'),
    "tollgate audit sessions --since 1d --kind llm": Run(
        f"{SESSIONS}::test_kind_lists_the_runs_that_reached_a_target_of_it",
        'listed(runs, "--kind", kind)',
        "each kind, llm among them, over the default week, which holds the same runs"),
    "tollgate audit replay --session llm-1": Run(
        f"{SESSIONS}::test_replay_of_a_run_says_what_it_was_then_shows_each_exchange_when",
        'audit(on_sqlite.config, "replay", "--session", "llm-1")'),
    # Envoy's bootstrap for a config (docs/operators/deploy.md).
    ".venv/bin/tollgate envoy-bootstrap --config tollgate.yaml --out envoy.yaml": Run(
        EVERY_KIND, '"envoy-bootstrap", "--config", str(path), "--out", str(out)',
        "through main(), a config with a target of every kind"),
    ".venv/bin/envoy --mode validate -c envoy.yaml": Run(
        f"{BOOTSTRAP}::envoy_validates", '"--mode", "validate", "-c", str(path)',
        "on each bootstrap the tests write"),
    ".venv/bin/tollgate envoy-bootstrap --config tollgate.yaml --out envoy.yaml "
    "--upstream model=https://api.openai.com": Run(
        EVERY_KIND, '"--upstream", "model=https://api.openai.example"',
        "a host of the .example domain: the bootstrap is validated, never run"),
    ".venv/bin/tollgate envoy-bootstrap --config tollgate.yaml --out envoy.yaml "
    "--listen-address 0.0.0.0 --tollgate-host tollgate": Run(
        f"{BOOTSTRAP}::test_addresses_and_ports_come_from_the_flags",
        '"--listen-address", "0.0.0.0", "--tollgate-host", "tollgate"',
        "with the listeners' ports moved too"),
    # The egress CA (docs/getting-started/egress.md).
    "tollgate egress ca": Run(
        "tests/cli/test_egress_ca.py::test_the_quickstart_s_ca_is_made_in_the_home_folder_and_printed",
        "egress_ca(tmp_path)", "as `python -m extproc egress ca`, HOME a folder of the test's"),
    "tollgate egress ca --install-hint": Run(
        "tests/cli/test_egress_ca.py::test_the_quickstart_s_ca_is_made_in_the_home_folder_and_printed",
        'egress_ca(tmp_path, "--install-hint")',
        "as `python -m extproc egress ca`, HOME a folder of the test's"),
    "tollgate egress ca --rotate": Run(
        "tests/cli/test_egress_ca.py::"
        "test_a_rotation_prints_both_cas_and_a_second_one_waits_for_the_overlap",
        'egress_ca(tmp_path, "--rotate")',
        "as `python -m extproc egress ca`, HOME a folder of the test's"),
}
