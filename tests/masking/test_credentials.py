"""Cloud and SaaS credentials: AWS, GitHub, GitLab, Slack, Stripe, OpenAI.

AWS ids are found with every IAM prefix (AKIA, ASIA, AGPA, AIDA, AROA, AIPA, ANPA, ANVA,
APKA, ABIA, ACCA, and the early A3T), in upper case; AKIA and ASIA ids in lower case too.

An AWS secret access key is 40 base64 characters and nothing more: it is a finding only
within 160 bytes after an AWS word ("aws", "secret_access_key", "SecretAccessKey") or an
AWS key id. OpenAI keys (and AWS secrets) must mix upper case, lower case and digits,
as generated keys do, so that "sk-" followed by words is not one.
"""

from __future__ import annotations

import pytest

from tests.masking.conftest import found

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
OPENAI = "sk-" + "T3BlbkFJ" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9dE"


@pytest.mark.parametrize(
    ("detector", "text", "expected"),
    [
        # positives
        ("aws_access_key_id", "id AKIAIOSFODNN7EXAMPLE,", ["AKIAIOSFODNN7EXAMPLE"]),
        ("aws_access_key_id", "ASIAY34FZKBOKMUTVV7A", ["ASIAY34FZKBOKMUTVV7A"]),
        ("aws_access_key_id", "id akiaiosfodnn7example", ["akiaiosfodnn7example"]),  # AWS
        ("aws_access_key_id", "asiay34fzkbokmutvv7a", ["asiay34fzkbokmutvv7a"]),  # takes it
        ("aws_secret_key", f"akiaiosfodnn7example:{AWS_SECRET}", [AWS_SECRET]),
        ("aws_secret_key", f"aws_secret_access_key = {AWS_SECRET}", [AWS_SECRET]),
        ("aws_secret_key", f'"SecretAccessKey": "{AWS_SECRET}"', [AWS_SECRET]),
        ("aws_secret_key", f"AKIAIOSFODNN7EXAMPLE:{AWS_SECRET}", [AWS_SECRET]),
        ("aws_secret_key", f"AWS creds below\n\nkey={AWS_SECRET}", [AWS_SECRET]),
        ("github_token", f"token {GHP}.", [GHP]),
        ("github_token", "gho_" + "a" * 36, ["gho_" + "a" * 36]),
        ("github_token", "github_pat_" + "11ABCDE" + "x" * 75, ["github_pat_11ABCDE" + "x" * 75]),
        ("gitlab_token", "glpat-" + "Ab3_-" * 4, ["glpat-" + "Ab3_-" * 4]),
        ("slack_token", "xoxb-1234567890-0987-AbCdEf", ["xoxb-1234567890-0987-AbCdEf"]),
        ("slack_token", "xoxp-1234567890-abcdef", ["xoxp-1234567890-abcdef"]),
        ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
        ("stripe_key", "rk_live_" + "4eC39HqLyjWDarjt", ["rk_live_4eC39HqLyjWDarjt"]),
        ("stripe_key", "sk_test_" + "4eC39HqLyjWDarjt", ["sk_test_4eC39HqLyjWDarjt"]),
        ("openai_key", f"OPENAI_API_KEY={OPENAI}", [OPENAI]),
        ("openai_key", "sk-proj-" + "Ab1_Cd2-" * 8, ["sk-proj-" + "Ab1_Cd2-" * 8]),
        *(("aws_access_key_id", f"arn {p}IOSFODNN7EXAMPLE.", [f"{p}IOSFODNN7EXAMPLE"])
          for p in ("AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA", "ABIA", "ACCA")),
        ("aws_access_key_id", "A3TXIOSFODNN7EXAMPLE", ["A3TXIOSFODNN7EXAMPLE"]),
        # negatives
        ("aws_access_key_id", "AXPAIOSFODNN7EXAMPLE", []),  # no IAM prefix
        ("aws_access_key_id", "aroaiosfodnn7example", []),  # lower case: AKIA, ASIA only
        ("aws_access_key_id", "AROAIOSFODNN7EXAMPLE1", []),  # 21 characters
        ("aws_access_key_id", "AKIAIOSFODNN7EXAMPL", []),  # 19 characters
        ("aws_access_key_id", "XAKIAIOSFODNN7EXAMPLE", []),
        ("aws_access_key_id", "asiapacificheadquart", []),  # lower case without a digit
        ("aws_access_key_id", "AkiaIOSFODNN7EXAMPLE", []),  # neither case
        ("aws_secret_key", f"key={AWS_SECRET}", []),  # no AWS context
        ("aws_secret_key", f"laws say {AWS_SECRET}", []),  # "laws" is no AWS word
        ("aws_secret_key", "aws commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904", []),  # git SHA
        ("aws_secret_key", f"aws {AWS_SECRET}Z", []),  # 41 characters
        ("aws_secret_key", "aws " + "x" * 200 + " " + AWS_SECRET, []),  # too far from context
        ("github_token", "ghp_short", []),
        ("github_token", "xghp_" + "a" * 36, []),
        ("github_token", "ghx_" + "a" * 36, []),
        ("gitlab_token", "glpat-short", []),
        ("slack_token", "xoxz-1234567890-abc", []),
        ("stripe_key", "pk_live_" + "4eC39HqLyjWDarjt", []),  # publishable, not secret
        ("stripe_key", "sk_live_short", []),
        ("openai_key", "skeleton key", []),
        ("openai_key", "use sk-learn for this", []),
        ("openai_key", "task-force-alpha-bravo-charlie-delta", []),
        ("openai_key", "sk-" + "abcdefghij" * 5, []),  # no digits, no capitals
        ("openai_key", "sk-this-is-not-a-real-key-at-all", []),
    ],
)
def test_credentials(detector: str, text: str, expected: list[str]) -> None:
    assert found(detector, text) == expected
