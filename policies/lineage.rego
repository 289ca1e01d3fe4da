# Derived values through SQL (sql-http and postgres targets): a result column the query
# computed from a protected column (`encode(ssn::bytea, 'base64')`, `replace(email, '@',
# ' at ')`, `md5(ssn)`, `string_agg(email, ',')`, `to_jsonb(customers)`) no longer looks
# like what it is, so masking by pattern or by column name cannot see it. The SQL
# interpreter reads each result column's lineage from the parse tree
# (input.sql.statements[].columns: name, sources, plain, known); a column that exposes a
# protected column in another form is masked whole (`[REDACTED:DERIVED]`, the mask's
# `derived`, matched by result column name), or the statement is refused, as
# the target's label `derived_values` says. A column exposes one when it is derived (not a
# plain reference) from it, or from a whole row (`*`), or from what the interpreter
# cannot see through (`known` false: a function it does not know, EXECUTE, CALL, FETCH);
# or when it is a plain reference renamed (`ssn AS note`): the name is what the mask's
# field rules read. A column named by the rows only ("*" of an unknown lineage, or a name
# the dialect gives an unnamed expression, null) names every column of the result.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (sql_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
# (sql_exchange: sql.rego's.)

denials contains x if {
	sql_exchange
	some x in lineage_denials
}

# Protected columns, per target name ("*": every SQL target without an entry of its own):
# column names, `*` matching any characters (glob.match's patterns, no
# delimiter). Sources are lower-case, unqualified. People's (masking/people.py) are here
# too, `name` included: what a column named `name` holds (a person's or a product's)
# cannot be told from the SQL, and `upper(name)` of a person's no longer looks like one.
protected_columns := {"*": [
	"ssn", "*social_security*", "*email*", "card*", "*card_number*", "cvv", "cvc", "iban",
	"*phone*", "password*", "passwd", "*secret*", "*token*", "*api_key*", "*private_key*",
	"name", "*first_name*", "*last_name*", "*full_name*", "*surname*", "*given_name*",
	"*family_name*", "*birth*", "dob", "*street*",
]}

# What the privileged group (who sees personal data, tollgate.rego's mask) still may not
# read derived: credentials.
credential_columns := ["password*", "passwd", "*secret*", "*token*", "*api_key*", "*private_key*"]

# "mask": masked whole (the default); "refuse": the statement is refused — on a target
# labelled `derived_values: refuse`.
derived_action := "refuse" if {
	input.target.labels.derived_values == "refuse"
} else := "mask"

target_protected := object.get(protected_columns, input.target.name, protected_columns["*"])

# What no mask applies to at all (tollgate.rego's mask is empty then).
unmasked if input.target.labels.masking == "off"

unmasked if input.k8s.verb == "portforward"

# The egress proxy's own target (a destination no target is configured for): a tunnel's
# bytes cannot be read, and an unknown site's pages are not data of ours to mask. A
# destination configured as a target is decided under that target, and keeps its mask;
# so does what the policy chose to read (egress.rego's `egress_read`: an inspect list's
# destination): what the agent sends there is masked on its way out, what comes back on
# its way in.
unmasked if {
	input.target.protocol == "egress"
	not egress_read
}

active_protected := [] if {
	unmasked
} else := [p | some p in credential_columns; p in target_protected] if {
	"privileged" in groups
} else := target_protected

protected_name(name) if glob.match(protected_glob, [], lower(name))

# The active patterns as one glob (`{ssn,*email*,…}`), matched once per name: a regex per
# pattern cost ~5 µs each (regorus compiles one on every call), 15 per result column.
protected_glob := sprintf("{%s}", [concat(",", active_protected)])

# A column of a top-level statement's result that exposes a protected column.
exposed_columns contains c if {
	some s in sql_statements
	s.nested == false
	is_array(s.columns)
	some c in s.columns
	count(active_protected) > 0
	exposes(c)
}

exposes(c) if c.known == false

exposes(c) if {
	c.plain == false
	some source in c.sources
	protected_source(source)
}

exposes(c) if {
	c.plain == true
	some source in c.sources
	protected_name(source)
	not same_name(c.name, source)
}

protected_source("*") := true

protected_source(source) if protected_name(source)

same_name(name, source) if {
	is_string(name)
	lower(name) == source
}

# The result column names the mask hides whole ("*": every column).
derived_columns contains name if {
	derived_action == "mask"
	some c in exposed_columns
	name := column_name(c)
}

column_name(c) := c.name if {
	is_string(c.name)
} else := "*"

lineage_denials contains {
	"rule": "sql.derived",
	"reason": sprintf("result column %s is computed from a protected column (%s): derived values of protected columns are refused on this target", [column_name(c), concat(", ", c.sources)]),
} if {
	derived_action == "refuse"
	some c in exposed_columns
}

# Derived values stored: a statement that stores a protected column's values where a
# later statement reads them back under another name or in another form — a view or a
# table made from a query, INSERT ... SELECT, UPDATE's SET, ON DUPLICATE KEY UPDATE, a
# generated column, a MySQL variable (`SELECT ssn INTO @v`, `SET @v = (...)`,
# `@v := ssn`, then `SELECT @v` or information_schema.user_variables) — lets that later
# read escape the mask, whose field rules and lineage see only what it reads. The
# interpreter lists what each statement stores and by which name
# (input.sql.statements[].stores: name, sources, plain, known). A value stored plainly
# under its own name keeps its mask (`CREATE VIEW v AS SELECT ssn FROM customers`,
# `INSERT INTO archive (email) SELECT email ...`, a view of `*`) and passes; any other
# store of a protected column is refused, whatever the target's derived_values. The dba
# group, trusted with the schema (it may rename a column), is not held to it.
lineage_denials contains {
	"rule": "sql.derived_store",
	"reason": sprintf("%s stores %s computed from a protected column (%s): read back later, it would escape the mask", [upper(s.kind), stored_name(c), concat(", ", c.sources)]),
} if {
	count(active_protected) > 0
	not dba
	some s in sql_statements
	is_array(s.stores)
	some c in s.stores
	stores_protected(c)
}

stores_protected(c) if {
	some source in c.sources
	protected_source(source)
	not kept_as_is(c, source)
}

# A store whose sources the reader cannot trace (`known` false: a column of a FROM item's
# own column list, `customers AS c(i, n, e)`, which names the table's columns by position;
# a function it does not know) may be a protected column's, as an unknown result column
# may (exposes): refused alike.
lineage_denials contains {
	"rule": "sql.derived_store",
	"reason": sprintf("%s stores %s whose source cannot be traced: it may be a protected column's, read back later under another name", [upper(s.kind), stored_name(c)]),
} if {
	count(active_protected) > 0
	not dba
	some s in sql_statements
	is_array(s.stores)
	count(array_or_empty(s.tables)) > 0 # no table read, no column's value to carry
	some c in s.stores
	c.known == false
}

kept_as_is(c, source) if {
	c.plain == true
	same_name(c.name, source)
}

stored_name(c) := sprintf("%s", [c.name]) if {
	is_string(c.name)
} else := "a value"

# tollgate.rego's mask, with the derived columns to hide whole.
with_derived(m) := object.union(m, {"derived": sort(derived_columns)}) if {
	count(m) > 0
	count(derived_columns) > 0
} else := m
