# Credential files: ONE list, in data, that every front reads (an MCP resources/read, an
# SSH command or SFTP open, a model's or an MCP server's tool call, a kubectl exec or cp).
# Reading one passes its secret to whoever asked; writing one (an authorized_keys line, a
# kubeconfig) plants access. So a request that names one is refused, whatever the front.
#
# Edit the list here, not the rules: `credentials` is data (data.tollgate.credentials; a
# test sets another with `with data.tollgate.credentials as {...}`), one complete object
# as the pack's other tables are. Lower case. Its keys:
# - "kinds": {"kind", "files"?, "folders"?, "except"?}. `kind` names the credential in
#   the refusal. A path is matched as the TAIL of the path a request names, at a segment
#   boundary, whatever the case: ".aws" matches ~/.aws, /home/bob/.aws/credentials,
#   /root/.aws/config and `.aws/x` in any folder (an agent's working directory may be a
#   home). A folder takes itself and everything below it; a file, that name alone. "*"
#   stands for any characters within a segment. `except`: last segments that are no
#   secret (`*.pub` below .ssh).
# - "roots": folders that hold credentials among the rest (a home, /, /run): an archive
#   or a recursive copy or search of one (`tar czf - ~`, `cp -r /home/bob x`, `grep -r
#   key ~`) is refused; naming one otherwise is not.
# Sources: AWS CLI (docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html),
# kubectl (kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig),
# service-account tokens (kubernetes.io/docs/tasks/run-application/access-api-from-pod),
# git-credential-store, libpq (postgresql.org/docs/current/libpq-pgpass.html), Docker
# (docs.docker.com/reference/cli/docker/login), npm, twine, gcloud, az, gh, Terraform
# (developer.hashicorp.com/terraform/cli/config/config-file#credentials), Vault, Cargo.
package tollgate

import rego.v1

credentials := {
	"kinds": [
		{"kind": "AWS credentials", "folders": [".aws"]},
		{"kind": "SSH keys", "folders": [".ssh"], "except": ["*.pub", "known_hosts", "known_hosts.old"]},
		{"kind": "a kubeconfig", "folders": [".kube"]},
		{
			"kind": "a Kubernetes service-account token",
			"folders": ["kubernetes.io/serviceaccount", "eks.amazonaws.com/serviceaccount"],
			"files": ["serviceaccount/token"],
		},
		{"kind": "a container secret", "folders": ["run/secrets"]},
		{"kind": "netrc passwords", "files": [".netrc", "_netrc"]},
		{"kind": "a PostgreSQL password file", "files": [".pgpass", "pgpass.conf"]},
		{"kind": "a MySQL option file", "files": [".my.cnf", ".mylogin.cnf"]},
		{"kind": "git credentials", "files": [".git-credentials", ".config/git/credentials"]},
		# .envrc too: direnv's files export secrets as often as .env holds them.
		{
			"kind": "an environment file",
			"files": [".env", ".env.*", ".envrc"],
			"except": [".env.example", ".env.sample", ".env.template", ".env.dist"],
		},
		{"kind": "Docker registry credentials", "folders": [".docker"]},
		{"kind": "an npm token", "files": [".npmrc"]},
		{"kind": "a PyPI token", "files": [".pypirc"]},
		{
			"kind": "Google Cloud credentials",
			"folders": [".config/gcloud"],
			"files": ["application_default_credentials.json"],
		},
		{"kind": "Azure credentials", "folders": [".azure"]},
		{"kind": "GitHub CLI tokens", "folders": [".config/gh"]},
		{
			"kind": "Terraform credentials",
			"folders": [".terraform.d"],
			"files": ["credentials.tfrc.json", ".terraformrc", "terraform.rc"],
		},
		{"kind": "a Vault token", "files": [".vault-token"]},
		{"kind": "GnuPG keys", "folders": [".gnupg"]},
		{"kind": "Cargo registry tokens", "files": [".cargo/credentials", ".cargo/credentials.toml"]},
		{"kind": "S3 credentials", "files": [".s3cfg", ".boto"]},
	],
	"roots": ["~", "/", "/home", "/users", "/run", "/var/run", "/var", "~/.config"],
}

# -- the list as regexes ----------------------------------------------------------------
# Built from whole joined strings: in the compiled program each builtin call costs
# microseconds, and one per path would cost every decision hundreds of them. The tables
# read no input: tollgate builds them once per policy revision (`tables`) and gives them
# back as data.tollgate_tables, which each reads first; another engine (OPA) builds them
# here, once per query. (Read as a condition, then as the value: regorus 0.13's compiled
# program takes no `else` after a body that assigns an undefined value.)
tables contains name if some name in [
	"credential_any", "credential_gate", "credential_text_words", "credential_patterns",
	"credential_instances", "credential_files_text", "credential_folders_text",
]

# The files, and the folders, of the list as one alternation each.
credential_files := glob_regex_body(concat("|", [p | some e in credentials.kinds; some p in e.files]))

credential_folders := glob_regex_body(concat("|", [p | some e in credentials.kinds; some p in e.folders]))

# Any credential at all: tried before the list is walked for the kind.
credential_any := data.tollgate_tables.credential_any if {
	data.tollgate_tables.credential_any
} else := credential_any_built

credential_any_built := sprintf(`(^|/)(%s)$|(^|/)(%s)(/|$)`, [credential_files, credential_folders])

# What a lower-case text (argv words joined by newlines, a command line) must hold for its
# words to be looked at: a path of the list ending a word, or a glob credential_glob may
# take (a word with a wildcard that starts with `.` or holds a `/`, a brace list); a path
# may follow short options it is the value of (`-f.env`).
credential_gate := data.tollgate_tables.credential_gate if {
	data.tollgate_tables.credential_gate
} else := credential_gate_built

credential_gate_built := sprintf("(^|[^a-z0-9_.+-]|%s)(%s)($|[\\s;&|()<>=`@:,'\"])|(^|[^a-z0-9_.+-]|%s)(%s)($|[/\\s;&|()<>=`@:,'\"])|%s", [
	short_options_gate, credential_files, short_options_gate, credential_folders, credential_glob_gate,
])

credential_glob_gate := sprintf("(^|[%s])\\.[%s]*[*?\\[]|[%s]*(/[%s]*[*?\\[{]|[*?\\[{][%s]*/)|\\{[%s]*,", [
	separators, word_chars, word_chars, word_chars, word_chars, word_chars,
])

short_options_gate := sprintf("(^|[%s])-[a-z0-9]+", [separators])

separators := "\\s;&|()<>=`@:,'\""

word_chars := sprintf("^%s", [separators])

# A text's words (quotes and backslashes removed) that may name one: those holding a
# path of the list or a wildcard.
credential_text_words := data.tollgate_tables.credential_text_words if {
	data.tollgate_tables.credential_text_words
} else := credential_text_words_built

credential_text_words_built := sprintf("[^\\s;&|()<>=`@:]*(%s|%s|[*?\\[{])[^\\s;&|()<>=`@:]*", [
	credential_files, credential_folders,
])

glob_regex_body(p) := strings.replace_n({".": `\.`, "+": `\+`, "*": `[^/]*`, "?": `[^/]`}, p)

# Each path as a regex, with its kind and its exceptions' regexes: walked only for a
# path that credential_any matched.
credential_patterns := data.tollgate_tables.credential_patterns if {
	data.tollgate_tables.credential_patterns
} else := credential_patterns_built

credential_patterns_built := array.concat([{"kind": e.kind, "regex": sprintf(`(^|/)%s$`, [glob_regex_body(p)]), "except": credential_except(e)} |
	some e in credentials.kinds
	some p in e.files
], [{"kind": e.kind, "regex": sprintf(`(^|/)%s(/|$)`, [glob_regex_body(p)]), "except": credential_except(e)} |
	some e in credentials.kinds
	some p in e.folders
])

credential_except(e) := [sprintf(`^%s$`, [glob_regex_body(x)]) | some x in e.except]

# One instance of each path, which a glob the request names (`~/.a*/c*`) is tried
# against: a file's name (its `*` an `x`), a folder itself; only those of a hidden name
# or of more than one segment (a glob such as `*.json` names no credential: `cat *.json`
# passes).
credential_instances := data.tollgate_tables.credential_instances if {
	data.tollgate_tables.credential_instances
} else := credential_instances_built

credential_instances_built := array.concat([{"kind": e.kind, "path": i, "folder": false, "except": []} |
	some e in credentials.kinds
	some p in e.files
	i := replace(p, "*", "x")
	credential_instance_kept(i)
], [{"kind": e.kind, "path": p, "folder": true, "except": credential_except(e)} |
	some e in credentials.kinds
	some p in e.folders
	credential_instance_kept(p)
])

credential_instance_kept(i) if startswith(i, ".")

credential_instance_kept(i) if contains(i, "/")

credential_files_text := data.tollgate_tables.credential_files_text if {
	data.tollgate_tables.credential_files_text
} else := credential_files_text_built

credential_files_text_built := concat("\n", [i.path | some i in credential_instances; not i.folder])

credential_folders_text := data.tollgate_tables.credential_folders_text if {
	data.tollgate_tables.credential_folders_text
} else := credential_folders_text_built

credential_folders_text_built := concat("\n", [i.path | some i in credential_instances; i.folder])

# -- what a request names ---------------------------------------------------------------

# The credentials a command names: {"path", "kind"} each. `groups` are lists of words:
# each argv, and the files written, as the shell reader gives them; an option's value
# counts, or each piece of a word when the whole names none (`--env-file=.env`,
# `-d@.env`, `h:~/.ssh/id_rsa`, `-f.env`) or holds blanks (an argv item that is a script:
# `["sh", "-c", "cat .env"]`). `texts` are the raw command lines: the shell reader's
# argv holds neither an assignment's value (`F=~/.aws/credentials; cat $F`) nor an
# input redirection's file (`base64 < .env`), so when the words name none, the texts'
# words (quotes and backslashes removed) are looked at.
# The gate is tried on all the words at once, then on each group, then on each word:
# a command naming none costs one regex, whatever its length.
credentials_named(groups, texts) := found if {
	regex.match(credential_gate, gate_text(concat("\n", [concat("\n", group) | some group in groups])))
	found := {hit |
		some group in groups
		regex.match(credential_gate, gate_text(concat("\n", group)))
		some word in group
		regex.match(credential_gate, gate_text(word))
		some hit in credential_word_hits(word)
	}
	count(found) > 0
} else := {hit |
	some text in texts
	is_string(text)
	plain := strings.replace_n({`'`: "", `"`: "", `\`: ""}, lower(text))
	regex.match(credential_gate, plain)
	some token in regex.find_n(credential_text_words, plain, -1)
	some hit in credential_word_hits(token)
}

# A text as the gate reads it: lower case, `\` a separator (a Windows path).
gate_text(text) := replace(lower(text), `\`, "/")

credential_word_hits(word) := hits if {
	not regex.match(`\s`, word)
	hits := credential_hits(word)
	count(hits) > 0
} else := {hit |
	some piece in regex.split(`[\s=@:,]+`, word)
	some hit in credential_hits(piece) | option_value_hits(piece)
}

# A value written against short options (`grep -f.env`, `xargs -a.env`) names a path as
# written: the shell expands no glob in it (`-f.e*` matches files named `-f.e…`).
option_value_hits(piece) := {{"path": value, "kind": concat(", ", sort(kinds))} |
	value := regex.replace(piece, `^-[A-Za-z0-9]+`, "")
	value != piece
	kinds := credential_kinds(replace(lower(value), `\`, "/"))
	count(kinds) > 0
}

# The credential a path names (an MCP resource's, an SFTP operation's): {"path", "kind"}.
credentials_in_path(path) := {hit |
	is_string(path)
	some hit in credential_hits(path)
}

# {"path": word, "kind": the kinds it names} when `word` names a credential.
credential_hits(word) := {{"path": word, "kind": concat(", ", sort(kinds))} |
	kinds := credential_word_kinds(replace(lower(word), `\`, "/"))
	count(kinds) > 0
}

# A path is compared lower-case, `\` a separator (a Windows server's URI). As it is a
# tail that is compared, `~`, `$HOME`, any home, `//`, `/./` and `..` before it change
# nothing; `..` after a folder of the list is still in it.
credential_word_kinds(path) := credential_glob_kinds(path) if {
	credential_glob(path)
} else := credential_kinds(path)

credential_kinds(path) := {p.kind |
	regex.match(credential_any, path)
	some p in credential_patterns
	regex.match(p.regex, path)
	not credential_excepted(p, path)
}

credential_excepted(p, path) if {
	segments := split(path, "/")
	some x in p.except
	regex.match(x, segments[count(segments) - 1])
}

# A word the shell expands (`*`, `?`, `[...]`, `{a,b}`) that may expand to a hidden
# name or through a folder (a wildcard opening a segment matches no leading dot, as in
# the shell: `cat *` reads no `.env`, so `*.py` is no glob here). It names a credential
# when, its wildcards dropped, it does (`~/.aws/cred*`), or when its segments match one
# of the list's instances (`~/.a?s/*`, `~/.*`: `.aws`).
credential_glob(w) if {
	regex.match(`[*?\[]|\{[^{}/]*(,|\.\.)[^{}/]*\}`, w)
	regex.match(`^\.|[/{]`, w)
}

credential_glob_kinds(path) := (credential_kinds(regex.replace(path, glob_wildcards, "")) | glob_file_kinds(glob_segments(path))) | glob_folder_kinds(glob_segments(path))

glob_wildcards := `\{[^{}/]*(,|\.\.)[^{}/]*\}|\[[^/\]]*\]|[*?]`

# A file of the list whose name the glob's last segments match.
glob_file_kinds(segments) := {i.kind |
	suffixes := glob_suffixes_regex(segments)
	regex.match(suffixes, credential_files_text)
	some i in credential_instances
	not i.folder
	regex.match(suffixes, i.path)
}

# A folder of the list that the glob's segments up to some j match: the glob is in it,
# unless it only names files the folder's `except` leaves out (`~/.ssh/*.pub`: a glob
# whose last segment ends with such a name's literal end).
glob_folder_kinds(segments) := {i.kind |
	some j, _ in segments
	run := glob_suffixes_regex(array.slice(segments, 0, j + 1))
	regex.match(run, credential_folders_text)
	some i in credential_instances
	i.folder
	regex.match(run, i.path)
	not glob_excepted(i, segments, j)
}

glob_excepted(instance, segments, j) if {
	j < count(segments) - 1
	last := segments[count(segments) - 1]
	not regex.match(`[\]*)?]$`, last)
	name := regex.replace(replace(last, `\.`, "."), `\[[^\]]*\]|[*]`, "")
	some x in instance.except
	regex.match(x, name)
}

# A regex matching any run of the last of `segments` (at most 32 of them, each a regex).
glob_suffixes_regex(all) := sprintf("(?m)^%s%s%s$", [
	concat("", ["(?:" | some i, _ in segments; i > 0]),
	concat("", [sprintf("%s/)?", [s]) | some i, s in segments; i < count(segments) - 1]),
	segments[count(segments) - 1],
]) if {
	segments := array.slice(all, max([0, count(all) - 32]), count(all))
}

# A glob's segments, each a regex (at most the last 64).
glob_segments(w) := [glob_segment(s) | some s in array.slice(all, max([0, count(all) - 64]), count(all))] if {
	all := split(glob_placeholders(w), "/")
}

# Wildcards as placeholders (no `/` in them, so the path still splits on `/`), the rest
# escaped: \x01 any run, \x02 any character, \x03 and \x04 the same opening a segment.
glob_placeholders(w) := strings.replace_n(
	{"*": "\u0001", "?": "\u0002", ".": `\.`, "+": `\+`, "(": `\(`, ")": `\)`, "^": `\^`, "$": `\$`, "|": `\|`, "[": `\[`, "]": `\]`, "{": `\{`, "}": `\}`},
	regex.replace(regex.replace(regex.replace(regex.replace(regex.replace(w, `\{[^{}/]*(,|\.\.)[^{}/]*\}`, "\u0001"), `(^|/)\[[^/\]]*\]`, "${1}\u0004"), `\[[^/\]]*\]`, "\u0002"), `(^|/)\*`, "${1}\u0003"), `(^|/)\?`, "${1}\u0004"),
)

glob_segment(s) := strings.replace_n({"\u0001": "[^/]*", "\u0002": "[^/]", "\u0003": "[^./][^/]*", "\u0004": "[^./]"}, s)

# -- folders holding credentials, read whole ----------------------------------------------

# The roots of the list (credentials.roots) that `argv` reads whole (an archiver, a recursive
# copy or search), each word or piece of one (`--directory=~`) that is one; `dot_home`:
# its working directory is a home (an SSH exec), so `.` (and `*`, `.*`) is one too.
credential_folders_read(argv, dot_home) := {word |
	recursive_reader(argv)
	some word in array.slice(argv, 1, count(argv))
	regex.match(credential_roots(dot_home), lower(word))
}

# Of `commands`, the roots each reads whole: the words of all tried at once first.
credential_folders_in(commands, dot_home) := {[argv[0], folder] |
	regex.match(credential_roots(dot_home), lower(concat("\n", [concat("\n", argv) | some argv in commands])))
	some_recursive_reader(commands)
	some argv in commands
	some folder in credential_folders_read(argv, dot_home)
}

# The roots as one regex on lines: `~` any home (`~bob`, `$HOME`, `/home/bob`, `/root`,
# `/Users/bob`), `/` one or more, with any trailing `/` or `/.`; a piece of a word after
# `=`, `@`, `:` or `,` too.
credential_roots(dot_home) := sprintf(`(?m)(^|[=@:,])(%s%s)(/+\.?)*($|[=@:,])`, [
	strings.replace_n(
		{"~": `(~[^/]*|\$\{?home\}?|/+home/+[^/]+|/+root|/+users/+[^/]+)`, "/": "/+", ".": `\.`},
		concat("|", credentials.roots),
	),
	credential_dot_roots(dot_home),
])

credential_dot_roots(true) := `|\.|\*|\.\*`

credential_dot_roots(false) := ""

some_recursive_reader(commands) if {
	some argv in commands
	recursive_reader(argv)
}

recursive_reader(argv) if argv[0] in {"tar", "bsdtar", "gtar", "pax", "zip", "7z", "7za", "rar", "jar", "rsync", "rclone", "rg", "ag", "ack", "restic", "borg"}

# Recursive copies and searches, and what prints a folder's files through, compressed
# (`gzip -rc ~`, `zstd -r -c .`) or as a difference from nothing (`diff -rN /empty ~`).
recursive_reader(argv) if {
	argv[0] in {"cp", "scp", "grep", "egrep", "fgrep", "zgrep", "gzip", "pigz", "zstd", "lz4", "diff"}
	some flag in argv
	recursive_flag(argv[0], flag)
}

recursive_flag(_, flag) if regex.match(`^(-[A-Za-z]*[rR][A-Za-z]*|--recursive|--dereference-recursive|--archive|--directories=recurse)$`, flag)

recursive_flag("cp", flag) if regex.match(`^-[A-Za-z]*a[A-Za-z]*$`, flag)

# "the credential named": the reason's part, e.g. `~/.aws/credentials (AWS credentials)`.
credential_named(hit) := sprintf("%s (%s)", [hit.path, hit.kind])

# The words a command reading names, in groups: each argv (`read`, shell.rego's argvs),
# each opaque command's, the files written.
command_words(read, opaque, writes) := array.concat(
	array.concat(read, [o.argv | some o in opaques(opaque)]),
	[[w | some w in array_or_empty(writes); is_string(w)]],
)

# What a command reading (and its raw texts) reveals of credentials, one reason each: the
# credentials it names, the folders holding them it reads whole. `dot_home`: as in
# credential_folders_read.
credentials_in_commands(commands, opaque, writes, texts, dot_home) := named | folders if {
	read := argvs(commands)
	named := {sprintf("credential %s", [credential_named(hit)]) |
		some hit in credentials_named(command_words(read, opaque, writes), texts)
	}
	folders := {sprintf("%s reads %s whole, a folder holding credentials", found) |
		some found in credential_folders_in(read, dot_home)
	}
}
