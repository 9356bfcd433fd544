import pytest
from fhir_platform.search.normalize import (
    DATE_MAX,
    date_range,
    normalize_phone,
    normalize_string,
    normalize_token,
    prefix_keys,
    words,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  José\tÁlvarez ", "jose alvarez"),
        ("MÜLLER", "muller"),
        ("Straße", "strasse"),  # casefold, not lower
        ("Ｊｏｈｎ", "john"),  # NFKD folds full-width forms
        ("Zoë  O'Brien", "zoe o'brien"),
        ("du Marché", "du marche"),
    ],
)
def test_normalize_string_folds_case_accents_and_whitespace(raw, expected):
    assert normalize_string(raw) == expected


def test_words_drop_apostrophes_and_split_on_punctuation():
    assert words("O'Hara-Smith, Zoë") == ["ohara", "smith", "zoe"]
    assert words("Body mass index (BMI) [Ratio]") == ["body", "mass", "index", "bmi", "ratio"]
    assert words("  ") == []


def test_prefix_keys_start_at_each_word_after_space_or_hyphen():
    assert prefix_keys("mary ann smith-jones") == ["mary ann smith-jones", "ann smith-jones", "smith-jones", "jones"]
    assert prefix_keys("cher") == ["cher"]


def test_normalize_token_is_case_insensitive():
    assert normalize_token(" MRN-12345A ") == "mrn-12345a"


@pytest.mark.parametrize(
    "raw",
    ["(555) 010-0012", "+1 555-010-0012", "5550100012", "1-555-010-0012", "555.010.0012", "+1 (555) 010 0012 ext. 12"],
)
def test_us_phone_formats_are_one_number(raw):
    assert normalize_phone(raw) == "5550100012"


def test_international_and_short_numbers_keep_their_digits():
    assert normalize_phone("+44 20 7946 0958") == "442079460958"
    assert normalize_phone("+33 (237) 998327") == "33237998327"
    assert normalize_phone("2328") == "2328"
    assert normalize_phone("no digits") == ""


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        ("2024-02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2024-12", "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        ("2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2024-03-05T10:00", "2024-03-05T10:00:00Z", "2024-03-05T10:01:00Z"),
        ("2024-03-05T10:00:30", "2024-03-05T10:00:30Z", "2024-03-05T10:00:31Z"),
        ("2024-03-05T10:00:30.123Z", "2024-03-05T10:00:30Z", "2024-03-05T10:00:31Z"),
        ("2024-03-05T10:00:00+02:00", "2024-03-05T08:00:00Z", "2024-03-05T08:00:01Z"),
        ("2014-10-09T14:58:00+11:00", "2014-10-09T03:58:00Z", "2014-10-09T03:58:01Z"),
        ("2024-01-01T00:30:00-05:00", "2024-01-01T05:30:00Z", "2024-01-01T05:30:01Z"),
        ("9999", "9999-01-01T00:00:00Z", DATE_MAX),
        ("0005-01-01", "0005-01-01T00:00:00Z", "0005-01-02T00:00:00Z"),
    ],
)
def test_date_range_of_each_precision(value, low, high):
    assert date_range(value) == (low, high)


@pytest.mark.parametrize(
    "bad", ["", "24", "2024-13", "2023-02-30", "2024-03-05T25:00", "yesterday", "2024-03-05T10", "2024/03/05"]
)
def test_date_range_rejects_malformed_dates(bad):
    with pytest.raises(ValueError):
        date_range(bad)


def test_date_range_strings_sort_like_times():
    instants = ["2024-03-05T23:30:00-05:00", "2024-03-06T01:00:00Z", "2024-03-05T10:00:00+09:00"]
    lows = sorted(date_range(v)[0] for v in instants)
    assert lows == ["2024-03-05T01:00:00Z", "2024-03-06T01:00:00Z", "2024-03-06T04:30:00Z"]
