"""Letters of other scripts that read as Latin ones: the strong pairs of Unicode's
confusables (Cyrillic, Greek, Latin's dotless i), written as escapes so that this source
shows what each is. Masking reads a word that mixes them with Latin letters as Latin
(masking/decoding.py), and so does the reader of instructions in answers
(interpret/instructions.py): IGNORE written with a Cyrillic I is IGNORE to a model."""

from __future__ import annotations

LOOKALIKES: dict[str, str] = dict(zip(
    "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0456\u0458\u0455\u0501\u051b\u051d\u04bb"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406\u0408\u0405\u04ae\u051a\u051c"
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u03bf\u03bd"
    "\u0131",
    "aeopcxyijsdqwh" "ABEKMHOPCTXIJSYQW" "ABEZHIKMNOPTYXov" "i", strict=True))
