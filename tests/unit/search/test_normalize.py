from datetime import UTC, datetime

import pytest
from fhir_platform.search.normalize import (
    DATE_MAX,
    date_range,
    format_instant,
    format_phone,
    parse_instant,
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
    assert normalize_phone("555-0199") == "5550199"  # a local number without its area code
    assert normalize_phone("no digits") == ""


def test_international_numbers_are_read_as_libphonenumber_reads_them():
    # the national trunk prefix "(0)" and the US international prefix 011 are not part of the number
    assert normalize_phone("+44 (0)20 7946 0958") == normalize_phone("011 44 20 7946 0958") == "442079460958"


# --- E.164 rendering (PatientListItem.phone, the patients view) ---------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "555-588-7087",  # Synthea: a 555 number, possible but not valid (no such area code)
        "(555) 588-7087",
        "555.588.7087",
        "5555887087",
        "1-555-588-7087",
        "+1 555 588 7087",
        "+1 (555) 588-7087",
        "tel:+1-555-588-7087",
        "+15555887087",  # already E.164
        " 555 588 7087 ",
    ],
)
def test_us_numbers_render_as_e164(raw):
    assert format_phone(raw) == "+15555887087"
    assert normalize_phone(format_phone(raw)) == normalize_phone(raw) == "5555887087"  # search finds what is shown


@pytest.mark.parametrize("raw", ["555-588-7087 ext. 12", "555-588-7087 x12", "(555) 588-7087 extension 12", "+1 555 588 7087 #12"])
def test_extensions_are_dropped_from_e164(raw):
    assert format_phone(raw) == "+15555887087"
    assert normalize_phone(raw) == "5555887087"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+442079460958", "+442079460958"),
        ("011 44 20 7946 0958", "+442079460958"),  # dialled from the US
        ("+33 1 42 68 53 00", "+33142685300"),
        ("+61 2 9374 4000", "+61293744000"),
    ],
)
def test_international_numbers_render_as_e164(raw, e164):
    assert format_phone(raw) == e164
    assert normalize_phone(e164) == normalize_phone(raw) == e164[1:]


@pytest.mark.parametrize(
    "raw",
    [
        "call the front desk",
        "555-0199",  # local: no area code
        "2328",
        "+1555",
        "12345678901234567890",
        "",
        "n/a",
        "+999 123",  # no such country code
        "(03) 5555 6473",  # Australian, written without +61: ten digits, but no NANP number starts with 0
        "123-456-7890",  # nor with 1
    ],
)
def test_what_is_not_a_full_length_number_is_returned_as_written(raw):
    assert format_phone(raw) == raw


def test_the_default_region_reads_numbers_without_a_country_code(monkeypatch):
    from fhir_platform import config

    assert format_phone("020 7946 0958", region="GB") == "+442079460958"
    assert normalize_phone("020 7946 0958", region="GB") == "442079460958"
    assert format_phone("020 7946 0958") == "020 7946 0958"  # in the US (the default) not a number
    monkeypatch.setenv("DEFAULT_PHONE_REGION", "gb")
    config.default_phone_region.cache_clear()
    try:
        assert config.default_phone_region() == "GB"
        assert format_phone("020 7946 0958") == "+442079460958"
        assert format_phone("+1 555 588 7087") == "+15555887087"  # a country code wins over the region
        monkeypatch.setenv("DEFAULT_PHONE_REGION", "XX")
        config.default_phone_region.cache_clear()
        with pytest.raises(config.ConfigurationError, match="DEFAULT_PHONE_REGION"):
            format_phone("555-588-7087")
    finally:
        monkeypatch.delenv("DEFAULT_PHONE_REGION")
        config.default_phone_region.cache_clear()
    assert config.default_phone_region() == "US"


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024", "2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"),
        ("2024-02", "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"),
        ("2024-12", "2024-12-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"),
        ("2024-02-29", "2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z"),
        ("2024-03-05T10:00", "2024-03-05T10:00:00.000Z", "2024-03-05T10:01:00.000Z"),
        ("2024-03-05T10:00:30", "2024-03-05T10:00:30.000Z", "2024-03-05T10:00:31.000Z"),
        # a fraction is a range of its own precision; digits past the millisecond are truncated
        ("2024-03-05T10:00:30.123Z", "2024-03-05T10:00:30.123Z", "2024-03-05T10:00:30.124Z"),
        ("2024-03-05T10:00:30.5Z", "2024-03-05T10:00:30.500Z", "2024-03-05T10:00:30.600Z"),
        ("2024-03-05T10:00:30.50Z", "2024-03-05T10:00:30.500Z", "2024-03-05T10:00:30.510Z"),
        ("2024-03-05T10:00:30.1239999Z", "2024-03-05T10:00:30.123Z", "2024-03-05T10:00:30.124Z"),
        ("2024-12-31T23:59:59.999Z", "2024-12-31T23:59:59.999Z", "2025-01-01T00:00:00.000Z"),
        ("2024-03-05T10:00:00.250+02:00", "2024-03-05T08:00:00.250Z", "2024-03-05T08:00:00.251Z"),
        ("2024-03-05T10:00:00+02:00", "2024-03-05T08:00:00.000Z", "2024-03-05T08:00:01.000Z"),
        ("2014-10-09T14:58:00+11:00", "2014-10-09T03:58:00.000Z", "2014-10-09T03:58:01.000Z"),
        ("2024-01-01T00:30:00-05:00", "2024-01-01T05:30:00.000Z", "2024-01-01T05:30:01.000Z"),
        ("9999", "9999-01-01T00:00:00.000Z", DATE_MAX),
        ("0005-01-01", "0005-01-01T00:00:00.000Z", "0005-01-02T00:00:00.000Z"),
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
    assert lows == ["2024-03-05T01:00:00.000Z", "2024-03-06T01:00:00.000Z", "2024-03-06T04:30:00.000Z"]


def test_instants_within_one_second_sort_like_times():
    """Fixed width to the millisecond: string order is time order inside one second too (with the
    old ``…:SSZ`` keys every instant of a second compared equal up to the resource id)."""
    instants = ["2025-01-01T00:00:00.9Z", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00.05Z", "2025-01-01T00:00:00.123Z",
                "2024-12-31T23:59:59.999Z", "2025-01-01T01:00:00.010+01:00", "2025-01-01T00:00:01Z"]
    keys = [parse_instant(v) for v in instants]
    assert len({len(k) for k in keys}) == 1
    assert sorted(keys) == [
        "2024-12-31T23:59:59.999Z", "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.010Z", "2025-01-01T00:00:00.050Z",
        "2025-01-01T00:00:00.123Z", "2025-01-01T00:00:00.900Z", "2025-01-01T00:00:01.000Z",
    ]
    assert format_instant(datetime(2025, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) == "2025-01-01T00:00:00.999Z"
