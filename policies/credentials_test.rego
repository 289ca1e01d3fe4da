# Unit tests of credentials.rego: the list, how a path is compared with it, and that it
# is data (a pack swaps it without touching a rule).
package tollgate_credentials_test

import rego.v1

import data.tollgate

kinds_of(word) := {hit.kind | some hit in tollgate.credentials_named([[word]], [])}

test_each_kind_of_the_list_is_named if {
	every path, kind in {
		"/home/ada/.aws/credentials": "AWS credentials",
		"~/.ssh/id_ed25519": "SSH keys",
		"$HOME/.kube/config": "a kubeconfig",
		"/var/run/secrets/kubernetes.io/serviceaccount/token": "a Kubernetes service-account token, a container secret",
		"/run/secrets/db_password": "a container secret",
		"/root/.netrc": "netrc passwords",
		"~/.pgpass": "a PostgreSQL password file",
		".git-credentials": "git credentials",
		"app/.env": "an environment file",
		".env.production": "an environment file",
		"~/.docker/config.json": "Docker registry credentials",
		"~/.npmrc": "an npm token",
		"~/.pypirc": "a PyPI token",
		"~/.config/gcloud/credentials.db": "Google Cloud credentials",
		"~/.azure/accessTokens.json": "Azure credentials",
		"~/.config/gh/hosts.yml": "GitHub CLI tokens",
		"~/.terraform.d/credentials.tfrc.json": "Terraform credentials",
		"~/.vault-token": "a Vault token",
		"~/.gnupg/private-keys-v1.d/x.key": "GnuPG keys",
		"~/.cargo/credentials.toml": "Cargo registry tokens",
	} {
		kinds_of(path) == {kind}
	}
}

test_spellings_of_one_path_are_one_path if {
	every path in [
		"/home/bob/.aws/credentials", "/root/.aws/credentials", "~bob/.aws/credentials",
		"${HOME}/.aws/credentials", ".aws/credentials", "~//.aws/./credentials/",
		"/tmp/../home/x/.aws/credentials", "~/.AWS/Credentials", "C:\\Users\\x\\.aws\\credentials",
		"--shared-credentials-file=~/.aws/credentials", "x@host:.aws/credentials",
	] {
		kinds_of(path) == {"AWS credentials"}
	}
}

# A value written against short options is a path too: `grep -f.env`, `xargs -a.env`.
test_a_short_options_value_names_a_path if {
	every word in ["-f.env", "-qa.env", "-f.aws/credentials", "-fconfig/.env"] {
		count(kinds_of(word)) > 0
	}
	tollgate.credentials_named([["grep", "-f.env"]], []) == {{"path": ".env", "kind": "an environment file"}}
	tollgate.credentials_named([["grep"]], ["xargs -a.ENV echo"]) == {{"path": ".env", "kind": "an environment file"}}
	every word in ["--x.env", "-x.env.example", "my-app.env", "-fenv", "-f.e*", "-e.*"] {
		kinds_of(word) == set()
	}
}

test_globs_that_may_expand_to_one_are_refused if {
	every glob in ["~/.aws/cred*", "~/.a?s/*", "~/.a*", "/home/*/.ssh/id_*", ".e[n]v", ".e{n,}v", "~/.ssh/{a,b}"] {
		count(kinds_of(glob)) > 0
	}
	# One hit a word, naming every kind it may be.
	[kinds] := [k | some k in kinds_of("~/.*")]
	contains(kinds, "netrc passwords")
	contains(kinds, "an environment file")
}

test_look_alikes_are_no_credentials if {
	every path in [
		"environment.md", ".env.example", "env", "my.env.d", ".venv/bin/activate",
		"~/.ssh/id_ed25519.pub", "~/.ssh/known_hosts", "~/.ssh/*.pub", "*", "*.json", "*.py",
		"~/.config/nvim/init.vim", "/srv/aws/credentials.md", "/etc/hosts", "token.txt",
	] {
		kinds_of(path) == set()
	}
}

# Words the shell reader cannot give (an assignment's value, a redirection's file) are
# found in the raw text; a text is looked at only when the words name nothing.
test_the_raw_text_is_read_when_the_words_name_nothing if {
	hits := tollgate.credentials_named([["cat", "$F"]], ["F=\"~/.aws/\"credentials; cat $F"])
	hits == {{"path": "~/.aws/credentials", "kind": "AWS credentials"}}
	tollgate.credentials_named([["base64"]], ["base64 < .ENV"]) == {{"path": ".env", "kind": "an environment file"}}
	tollgate.credentials_named([["cat", ".ENV"]], ["cat .env"]) == {{"path": ".ENV", "kind": "an environment file"}}
}

test_folders_holding_credentials_read_whole if {
	every argv in [["tar", "czf", "-", "~"], ["cp", "-r", "/home/bob", "x"], ["grep", "-R", "k", "/"], ["rsync", "-a", "/root/", "h:x"], ["zip", "-r", "z", "~/.config"], ["gzip", "-rc", "~"], ["zstd", "-r", "-c", "/home"], ["diff", "-rN", "/tmp/e", "~"], ["pax", "-w", "/root"]] {
		count(tollgate.credential_folders_read(argv, false)) == 1
	}
	tollgate.credential_folders_read(["tar", "cf", "-", "."], true) == {"."}
	every argv in [["tar", "cf", "-", "."], ["grep", "k", "~"], ["ls", "-R", "~"], ["cp", "~", "x"], ["tar", "cf", "-", "./src"], ["gzip", "-c", "~"], ["diff", "~", "/tmp/e"]] {
		tollgate.credential_folders_read(argv, false) == set()
	}
}

test_the_list_is_data if {
	own := {"kinds": [{"kind": "a KeePass database", "files": ["*.kdbx"]}], "roots": ["/vault"]}
	kinds_of("/srv/team.kdbx") == {"a KeePass database"} with data.tollgate.credentials as own
	kinds_of(".env") == set() with data.tollgate.credentials as own
	tollgate.credential_folders_read(["tar", "cf", "-", "/vault"], false) == {"/vault"} with data.tollgate.credentials as own
}
