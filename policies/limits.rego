# The thresholds of the pack's activity rules (activity.rego), as data: edit the numbers
# here, not the rules. Each rule reads `data.tollgate.limits`, so a test sets other
# limits with `with data.tollgate.limits as {...}`. A limit left out, or one that is not
# a number, turns its rule off. It is one complete object, as the pack's other tables
# are: the compiled program tollgate runs takes no object built key by key across files.
package tollgate

import rego.v1

limits := {
	# activity.personal_volume: once more than this many personal values (the detectors
	# below) were masked in an identity's answers within the last hour, its further reads
	# wait for approval.
	"personal_values_per_hour": 500,
	# The masking detectors (extproc/masking/detectors.py) whose findings are personal or
	# financial data. Credentials are not personal data, and an IP address (ip_address)
	# is mostly a machine's in what agents read (logs, configurations).
	"personal_detectors": [
		"credit_card", "email", "iban", "phone", "us_ssn", "uk_nino", "in_aadhaar", "de_tax_id",
		"nl_bsn", "es_nif", "it_fiscal_code", "fr_nir", "pl_pesel", "se_personnummer", "dk_cpr",
		"ca_sin", "au_tfn", "fi_hetu", "br_cpf", "ch_ahv", "us_itin", "mx_curp", "jp_my_number",
		"kr_rrn", "cn_resident_id", "sg_nric", "za_id", "tr_kimlik", "il_id", "uk_nhs", "br_cnpj",
		"au_medicare", "au_abn", "in_pan", "au_acn", "th_tnin", "it_vat", "sg_uen", "ng_nin",
		"us_passport", "in_passport", "it_passport", "it_identity_card", "in_voter",
		"us_driver_license", "it_driver_license", "us_bank_number", "in_vehicle_registration",
	],
	# activity.shared_volume: once more than this many personal values were masked on one
	# target, or for one group of identities, within the last hour over every identity,
	# further reads there (or by the group's members) wait for approval.
	"personal_values_per_hour_per_target": 10000,
	"personal_values_per_hour_per_group": 5000,
	# activity.refusal_burst: a refused exchange alerts once the identity has this many
	# refusals within the last minute, that exchange included.
	"refusals_per_minute": 10,
	# activity.token_reuse: one token (by its jti) used from more source addresses, or in
	# more environments, than this within a day (its lifetime, for a shorter-lived one)
	# has been copied: refused, and alerted on.
	"token_addresses": 1,
	"token_environments": 1,
}
