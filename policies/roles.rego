# Least privilege at the database (postgres and mysql targets that list `roles`): the
# login's decision names the role the session runs as (`database_role`), and the front
# runs it so; the database then refuses what that role may not do, whatever the rules
# of the other files let through. The gateway's own account should hold no privilege of
# its own (`tollgate db grants TARGET` writes the SQL for such roles).
package tollgate

import rego.v1

# Groups to roles, per target name ("*": every target without an entry of its own): the
# first entry whose group the identity has and whose role the target lists wins. E.g.
# {"*": [...], "orders-db": [{"group": "agents", "role": "orders_reader"}]}.
database_roles := {"*": [
	{"group": "dba", "role": "tollgate_dba"},
	{"group": "agents", "role": "tollgate_agent"},
]}

# A session's login: PostgreSQL's, MySQL's, or a MySQL COM_CHANGE_USER (a login anew).
database_login if input.postgres.message == "connect"

database_login if input.mysql.command in {"connect", "change_user"}

# The roles the target lists (input.postgres.roles, input.mysql.roles).
login_roles := input.postgres.roles if {
	database_login
	is_array(input.postgres.roles)
} else := input.mysql.roles if {
	database_login
	is_array(input.mysql.roles)
} else := []

database_role := roles[0] if {
	database_login
	entries := object.get(database_roles, input.target.name, database_roles["*"])
	roles := [e.role | some e in entries; e.group in groups; e.role in login_roles]
	count(roles) > 0
}

denials contains {
	"rule": "database.role",
	"reason": sprintf("no database role of this target (%s) is given to the groups of this identity (%s)", [concat(", ", login_roles), login_groups]),
} if {
	database_login
	count(login_roles) > 0
	not database_role
}

login_groups := concat(", ", groups) if count(groups) > 0 else := "none"

# How long one statement of an agent's session may run before the server cancels it (a
# runaway query holds its locks and a connection); the dba group's run as long as the
# server lets them.
agent_statement_timeout_seconds := 300

passing_terms contains ["database_role", database_role] if database_role

passing_terms contains ["statement_timeout_seconds", agent_statement_timeout_seconds] if {
	database_login
	agent
	not dba
}
