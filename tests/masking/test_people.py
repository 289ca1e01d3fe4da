"""People's names, postal addresses and dates of birth: found by the keys, columns and
cue words that name them, in every language tollgate's users label fields in; left where
a key that may name anything holds something else."""

from __future__ import annotations

import json

import pytest

from extproc.masking import Masker, MaskSpec
from extproc.masking.people import address_shaped, person_shaped
from extproc.masking.record_mask import RECORD_MASK

PEOPLE = MaskSpec(detectors=frozenset({"person_name", "postal_address", "date_of_birth"}),
                  fields=frozenset())
ALL = MaskSpec()

# (key, a value, the entity it is masked as): every locale's keys.
KEYED = [
    # en, en_IN, en_AU, en_CA
    ("full_name", "Priya Sharma", "PERSON"), ("first_name", "Priya", "PERSON"),
    ("last_name", "Sharma", "PERSON"), ("surname", "Nguyen", "PERSON"),
    ("given_name", "Liam", "PERSON"), ("familyName", "Tremblay", "PERSON"),
    ("name", "Olivia Wilson", "PERSON"), ("customer_name", "Arjun Patel", "PERSON"),
    ("dob", "1990-05-12", "DATE_OF_BIRTH"), ("date_of_birth", "12/05/1990", "DATE_OF_BIRTH"),
    ("birthDate", "May 12, 1990", "DATE_OF_BIRTH"), ("birthday", "12.05.1990", "DATE_OF_BIRTH"),
    ("address", "42 Wallaby Way, Sydney NSW 2000", "ADDRESS"),
    ("street_address", "221B Baker Street", "ADDRESS"), ("street", "Baker Street", "ADDRESS"),
    ("postcode", "NW1 6XE", "ADDRESS"), ("zip", "94105", "ADDRESS"),
    ("postal_code", "K1A 0B1", "ADDRESS"), ("pincode", "560001", "ADDRESS"),
    ("billingAddress", "1600 Pennsylvania Avenue NW, Washington", "ADDRESS"),
    ("address_line_1", "Flat 2, 10 Downing Street", "ADDRESS"),
    # de
    ("Nachname", "Müller", "PERSON"), ("Vorname", "Jürgen", "PERSON"),
    ("Geburtsdatum", "12.05.1990", "DATE_OF_BIRTH"), ("PLZ", "10115", "ADDRESS"),
    ("Straße", "Unter den Linden 77", "ADDRESS"), ("Anschrift", "Hauptstr. 5, Köln", "ADDRESS"),
    # fr
    ("prénom", "Jean", "PERSON"), ("nom", "Jean Dupont", "PERSON"),
    ("nom_de_famille", "Dupont", "PERSON"), ("date_de_naissance", "12/05/1990", "DATE_OF_BIRTH"),
    ("adresse", "12 rue de Rivoli, Paris", "ADDRESS"), ("code_postal", "75001", "ADDRESS"),
    # es
    ("nombre", "María García", "PERSON"), ("apellido", "García", "PERSON"),
    ("fecha_de_nacimiento", "12/05/1990", "DATE_OF_BIRTH"),
    ("dirección", "Calle Mayor 5, Madrid", "ADDRESS"), ("código_postal", "28013", "ADDRESS"),
    # it
    ("cognome", "Rossi", "PERSON"), ("nome", "Mario Rossi", "PERSON"),
    ("data_di_nascita", "12/05/1990", "DATE_OF_BIRTH"),
    ("indirizzo", "Via Roma 10, Milano", "ADDRESS"),
    # nl
    ("achternaam", "de Vries", "PERSON"), ("voornaam", "Daan", "PERSON"),
    ("geboortedatum", "12-05-1990", "DATE_OF_BIRTH"), ("adres", "Kalverstraat 1, Amsterdam",
                                                       "ADDRESS"),
    ("straat", "Kalverstraat", "ADDRESS"),
    # pl
    ("imię", "Zofia", "PERSON"), ("nazwisko", "Kowalska", "PERSON"),
    ("data_urodzenia", "12.05.1990", "DATE_OF_BIRTH"), ("ulica", "Długa 5/7", "ADDRESS"),
    ("kod_pocztowy", "00-950", "ADDRESS"),
    # sv
    ("efternamn", "Andersson", "PERSON"), ("förnamn", "Elsa", "PERSON"),
    ("födelsedatum", "1990-05-12", "DATE_OF_BIRTH"), ("postnummer", "114 55", "ADDRESS"),
    # pt
    ("sobrenome", "Silva", "PERSON"), ("data_de_nascimento", "12/05/1990", "DATE_OF_BIRTH"),
    ("endereço", "Rua Augusta 100, São Paulo", "ADDRESS"), ("cep", "01310-100", "ADDRESS"),
    # ja, ko, zh
    ("氏名", "山田太郎", "PERSON"), ("名前", "山田 太郎", "PERSON"), ("生年月日", "1990年5月12日",
                                                                   "DATE_OF_BIRTH"),
    ("住所", "東京都千代田区千代田1-1", "ADDRESS"), ("郵便番号", "100-0001", "ADDRESS"),
    ("이름", "김민준", "PERSON"), ("생년월일", "1990-05-12", "DATE_OF_BIRTH"),
    ("주소", "서울특별시 중구 세종대로 110", "ADDRESS"),
    ("姓名", "王小明", "PERSON"), ("出生日期", "1990-05-12", "DATE_OF_BIRTH"),
    ("地址", "北京市东城区1号", "ADDRESS"),
    # ru
    ("фамилия", "Иванов", "PERSON"), ("имя", "Иван Иванов", "PERSON"),
    ("дата_рождения", "12.05.1990", "DATE_OF_BIRTH"), ("адрес", "ул. Тверская, 7, Москва",
                                                       "ADDRESS"),
    # tr
    ("soyadı", "Yılmaz", "PERSON"), ("ad", "Ayşe Yılmaz", "PERSON"),  # noqa: RUF001
    ("doğum_tarihi", "12.05.1990", "DATE_OF_BIRTH"), ("posta_kodu", "34000", "ADDRESS"),
    # he
    ("שם", "דוד כהן", "PERSON"), ("שם_משפחה", "כהן", "PERSON"),
    ("תאריך_לידה", "12.05.1990", "DATE_OF_BIRTH"), ("כתובת", "רחוב הרצל 1, תל אביב", "ADDRESS"),
]


def _token(entity: str) -> str:
    return f"[REDACTED:{entity}]"


@pytest.mark.parametrize(("key", "value", "entity"), KEYED)
def test_a_key_in_json_masks_its_value(masker: Masker, key: str, value: str,
                                       entity: str) -> None:
    masked, _ = masker.mask_json({key: value, "id": 7}, PEOPLE)
    assert masked == {key: _token(entity), "id": 7}


@pytest.mark.parametrize(("key", "value", "entity"), KEYED)
def test_a_key_in_text_masks_its_value(masker: Masker, key: str, value: str,
                                       entity: str) -> None:
    """`key: value` (YAML, a form printed), `key=value` (quoted where it has spaces), and
    JSON carried as text."""
    quoted = f'"{value}"' if " " in value else value
    for text in (f"{key}: {value}\nstatus: ok", f"ts=1 {key}={quoted} level=info",
                 json.dumps({key: value, "ok": True}, ensure_ascii=False)):
        masked, _ = masker.mask_text(text, PEOPLE)
        assert value not in masked and _token(entity) in masked, text


@pytest.mark.parametrize(("key", "value", "entity"), KEYED)
def test_a_column_masks_its_cells(masker: Masker, key: str, value: str, entity: str) -> None:
    """In a table's header, as a CSV body (`delimiter`), as a JSON value, and as text that
    is a table (its first line the header)."""
    table = f"id,{key},note\n1,\"{value}\",ok\n2,\"{value}\",fine\n"
    expected = f"id,{key},note\n1,\"{_token(entity)}\",ok\n2,\"{_token(entity)}\",fine\n"
    assert masker.mask_text(table, PEOPLE, ",")[0] == expected
    assert masker.mask_text(table, PEOPLE)[0] == expected
    assert masker.mask_json({"text": table}, PEOPLE)[0] == {"text": expected}


def test_a_large_table_is_masked_to_its_last_row(masker: Masker) -> None:
    rows = "".join(f"{i},Ada Lovelace,1815-12-10\n" for i in range(500))
    masked, counts = masker.mask_text("id,name,dob\n" + rows, PEOPLE, ",")
    assert "Lovelace" not in masked and counts == {"person_name": 500, "date_of_birth": 500}
    assert masker.mask_json({"csv": "id,name,dob\n" + rows}, PEOPLE)[1] == counts


def test_a_long_table_in_text_is_masked_to_its_last_row_whole_or_streamed(
        masker: Masker) -> None:
    """A table as plain text (no delimiter given): every row under its header, and a
    stream past its first 512 bytes reads them under its body's first line."""
    rows = "".join(f"{i},Ada Lovelace,1815-12-10,ok\n" for i in range(200))
    text = "id,name,dob,note\n" + rows
    whole, counts = masker.mask_text(text, PEOPLE)
    assert "Lovelace" not in whole and counts == {"person_name": 200, "date_of_birth": 200}
    for size in (37, 500, 4096):
        stream = masker.stream(PEOPLE)
        out = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert out + stream.finish() == whole


def test_a_table_of_sql_rows_masks_by_column(masker: Masker) -> None:
    table = {"columns": ["id", "last_name", "zip"], "rows": [[1, "Smith", 10115]]}
    assert masker.mask_json(table, PEOPLE)[0]["rows"] == [
        [1, "[REDACTED:PERSON]", "[REDACTED:ADDRESS]"]]


@pytest.mark.parametrize("doc", [
    # An OpenAI or MCP tool's name, a model's, a file's, a product's, a city alone.
    {"tools": [{"type": "function", "function": {"name": "get_weather",
                                                 "description": "Weather in a city"}}]},
    {"name": "search_docs", "inputSchema": {"type": "object"}},
    {"model": "gpt-4o", "name": "gpt-4o"}, {"name": "Claude 3 Opus"}, {"name": "README.md"},
    {"name": "Google Cloud Storage"}, {"name": "Acme Corp"}, {"name": "New York"},
    {"name": "api-gateway"}, {"name": "ALPHA TEAM"}, {"display_name": "Deploy Bot"},
    # One word under `name`: a product's, a project's, a tool's as often as a person's.
    {"name": "Alice"}, {"name": "Atlas"},
    {"city": "Berlin", "country": "DE", "state": "CA"},
    {"address": "10.0.0.1"}, {"address": "db.internal:5432"}, {"address": "0x7ffe3a2b"},
    {"address": "https://example.com/a"}, {"ip_address": "fe80::1"},
    {"email_address": "a@b.co"}, {"address": "0x71C7656EC7ab88b098defB751B7401B5f6d8976F"},
    {"zip": True}, {"zip": "archive.tar"}, {"filename": "Alice Smith.pdf"},
    {"hostname": "web-01"}, {"username": "asmith"}, {"ad": "banner_42"},
    {"dob": None}, {"name": ""}, {"payload": "x", "thread": "y", "download": 3},
])
def test_what_names_no_person_passes(masker: Masker, doc: dict[str, object]) -> None:
    masked, counts = masker.mask_json(doc, PEOPLE)
    assert masked == doc and not counts


# A key that says what it holds only in a record with a key that says so alone: a city
# beside a street, a postcode, a person's name or birth date; one word under `name`,
# `nom`, `nombre` beside a surname; an Italian `via` or `cap` beside the rest.
COMPANIONS = [
    ({"street": "Unter den Linden 77", "plz": "10117", "ort": "Berlin"}, "ort", "ADDRESS"),
    ({"full_name": "Ada Lovelace", "city": "London"}, "city", "ADDRESS"),
    ({"city": "Lyon", "dob": "1985-03-03"}, "city", "ADDRESS"),  # the other key after it
    ({"prénom": "Danielle", "nom": "Regnier"}, "nom", "PERSON"),
    ({"nombre": "Amada", "last_name": "Ibarra"}, "nombre", "PERSON"),
    ({"nome_completo": "Maria Cimarosa", "via": "Stretto Mennea, 14", "cap": "47922",
      "città": "Pienza"}, "via", "ADDRESS"),
    ({"姓": "山崎", "名": "陽子", "番地": "665 小川"}, "名", "PERSON"),
]


@pytest.mark.parametrize(("doc", "key", "entity"), COMPANIONS)
def test_a_key_beside_another_of_a_person_masks_its_value(
        masker: Masker, doc: dict[str, str], key: str, entity: str) -> None:
    """In JSON, in text (either order: a stream holds back the reach), in a table."""
    value = doc[key]
    assert masker.mask_json(doc, PEOPLE)[0][key] == _token(entity)
    for text in ("\n".join(f"{k}: {v}" for k, v in doc.items()),
                 " ".join(f'{k}="{v}"' for k, v in doc.items()),
                 json.dumps(doc, ensure_ascii=False)):
        masked, _ = masker.mask_text(text, PEOPLE)
        assert value not in masked.replace(_token(entity), ""), text
    table = ",".join(doc) + "\n" + ",".join(f'"{v}"' for v in doc.values()) + "\n"
    assert value not in masker.mask_text(table, PEOPLE, ",")[0]


@pytest.mark.parametrize("doc", [
    {"via": "cli", "endpoint": "search"}, {"via": "1.1 envoy", "server": "envoy"},
    {"city": "Paris", "country": "FR", "currency": "EUR"}, {"cap": 100, "used": 42},
    {"name": "Atlas", "version": "2.1"}, {"nom": "Widget", "prix": 12},
])
def test_a_companion_key_alone_passes(masker: Masker, doc: dict[str, object]) -> None:
    masked, counts = masker.mask_json(doc, PEOPLE)
    assert masked == doc and not counts


def test_a_companion_far_from_the_record_passes(masker: Masker) -> None:
    text = "street: Baker Street 221B\n" + "x" * 300 + "\ncity: London\n"
    assert "London" in masker.mask_text(text, PEOPLE)[0]


@pytest.mark.parametrize("text", [
    "The meeting is on 12 May 1990 at noon.", "Released 2024-01-15, see CHANGELOG.",
    "created: 2024-01-15T10:00:00Z", "Deadline: 12.05.2026", "Born to run (1975) by Springsteen",
    "name: get_weather\ndescription: the weather", "Your name, please.",
    "reborn 12 May 1990", "filename=report.pdf",
])
def test_dates_and_words_without_a_cue_pass(masker: Masker, text: str) -> None:
    assert masker.mask_text(text, PEOPLE) == (text, {})


BORN = [
    ("He was born on 12 May 1990 in Leeds.", "12 May 1990"),
    ("Patient, born 1990-05-12, admitted", "1990-05-12"),
    ("DOB: 05/12/1990", "05/12/1990"), ("d.o.b. 12.05.1990", "12.05.1990"),
    ("Date of birth: May 12, 1990", "May 12, 1990"),
    ("Max Mustermann, geb. 12.05.1990", "12.05.1990"),
    ("geboren am 12. Mai 1990 in Köln", "12. Mai 1990"),
    ("née le 3 mars 1985 à Lyon", "3 mars 1985"), ("né le 03/03/1985", "03/03/1985"),
    ("nacido el 5 de mayo de 1980 en Sevilla", "5 de mayo de 1980"),
    ("nata il 12/05/1990 a Roma", "12/05/1990"), ("geboren op 12-05-1990", "12-05-1990"),
    ("urodzony 12 maja 1990 r.", "12 maja 1990"), ("född 1990-05-12 i Malmö", "1990-05-12"),
    ("nascido em 12 de maio de 1990", "12 de maio de 1990"),
    ("1990年5月12日生まれ", "1990年5月12日"), ("родился 12 мая 1990 года", "12 мая 1990"),
    ("doğum tarihi: 12.05.1990", "12.05.1990"), ("נולד ב-12.05.1990", "12.05.1990"),
    ("1990년 5월 12일생", "1990년 5월 12일"), ("出生于1990年5月12日", "1990年5月12日"),
]


@pytest.mark.parametrize(("text", "date"), BORN)
def test_a_date_after_a_birth_cue_is_masked(masker: Masker, text: str, date: str) -> None:
    masked, counts = masker.mask_text(text, PEOPLE)
    assert masked == text.replace(date, "[REDACTED:DATE_OF_BIRTH]")
    assert counts == {"date_of_birth": 1}


def test_numbers_under_birth_and_postcode_keys_are_masked(masker: Masker) -> None:
    doc = {"dob": 19900512, "zip": 94105, "count": 94105, "id": 19900512}
    assert masker.mask_json(doc, PEOPLE)[0] == {
        "dob": "[REDACTED:DATE_OF_BIRTH]", "zip": "[REDACTED:ADDRESS]", "count": 94105,
        "id": 19900512}


def test_a_label_in_prose_is_read_from_its_last_words(masker: Masker) -> None:
    text = "Please enter your name: Alice Smith, then press OK.\nPatient full name: Bo"
    assert masker.mask_text(text, PEOPLE)[0] == (
        "Please enter your name: [REDACTED:PERSON], then press OK.\n"
        "Patient full name: [REDACTED:PERSON]")


def test_an_address_on_a_line_keeps_its_commas_and_stops_at_the_line(masker: Masker) -> None:
    text = "address: 221B Baker Street, London NW1 6XE\ncity: London"
    assert masker.mask_text(text, PEOPLE)[0] == "address: [REDACTED:ADDRESS]\ncity: London"


def test_every_detector_includes_people_and_the_record_masks_them(masker: Masker) -> None:
    doc = {"name": "Ada Lovelace", "email": "ada@example.com"}
    for spec in (ALL, RECORD_MASK):
        assert masker.mask_json(doc, spec)[0] == {
            "name": "[REDACTED:PERSON]", "email": "[REDACTED:EMAIL_ADDRESS]"}


def test_a_policy_names_the_detectors() -> None:
    spec = MaskSpec.from_policy({"detectors": ["person_name", "date_of_birth"]})
    assert spec.detectors == {"person_name", "date_of_birth"}


@pytest.mark.parametrize(("value", "shaped"), [
    ("Alice Smith", True), ("Ludwig van Beethoven", True), ("Mary O'Brien", True),
    ("Jean-Luc Picard", True), ("J. R. Tolkien", True), ("Dr. Alice Smith", True),
    ("Иван Иванов", True), ("山田太郎", True), ("김민준", True), ("דוד כהן", True),
    ("Alice", False), ("alice smith", False), ("ALICE SMITH", False), ("gpt-4o", False),
    ("Project Phoenix", False), ("Alice Smith Jones Brown Lee", False), ("天", False),
    # titles and degrees are read past: the name is what is left
    ("Prof. Jens-Peter Geißler B.Sc.", True), ("Dipl.-Ing. Helene Austermühle", True),
    ("Dott. Barbara Boito", True), ("Mrs Natalie Manning", True), ("Dr. Who", False),
])
def test_person_shape(value: str, shaped: bool) -> None:
    assert person_shaped(value) is shaped


@pytest.mark.parametrize(("value", "shaped"), [
    ("221B Baker Street", True), ("Calle Mayor 5, Madrid", True), ("東京都千代田区1-1", True),
    ("Baker Street", False), ("10.0.0.1", False), ("db:5432", False), ("a@b.co", False),
    ("http://x.y/1 a", False), ("/var/run 1", False),
])
def test_address_shape(value: str, shaped: bool) -> None:
    assert address_shaped(value) is shaped


def test_a_stream_masks_as_the_whole_text_does(masker: Masker) -> None:
    text = ("log start\nname: Ada Lovelace\ndob=1815-12-10 ok\n" * 20
            + "born on 10 December 1815\naddress: 12 St James's Square, London\n"
            + "city: Leeds\n" + "nom: Curie\n" + "." * 200 + "\nnom_de_famille: Curie\n")
    for spec in (ALL, PEOPLE):  # PEOPLE's hold-back is its own detectors' alone
        whole = masker.mask_text(text, spec)[0]
        assert "Leeds" not in whole and "Curie" not in whole  # beside a key after them
        stream = masker.stream(spec)
        out = "".join(stream.feed(text[i : i + 37]) for i in range(0, len(text), 37))
        assert out + stream.finish() == whole
