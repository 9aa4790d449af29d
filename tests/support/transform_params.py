"""The transform parameters' tables the suite shares: every canonical value of every
parameter, and every malformed form each parser and signer must refuse."""

from __future__ import annotations

#: Every canonical value of every parameter (ranges by their ends and a middle), typed.
VALID: dict[str, dict[str, object]] = {
    "w": {"1": 1, "800": 800, "10000": 10000},
    "h": {"1": 1, "600": 600, "10000": 10000},
    "fit": {v: v for v in ("cover", "contain", "fill", "scale-down")},
    "aspect": {v: v for v in ("original", "1:1", "4:3", "16:9", "3:2", "21:9")},
    "q": {"1": 1, "80": 80, "100": 100},
    "dpr": {"1": 1.0, "1.5": 1.5, "2": 2.0, "3": 3.0},
    "crop": {
        v: v
        for v in (
            "center",
            "top",
            "bottom",
            "left",
            "right",
            "top-left",
            "top-right",
            "bottom-left",
            "bottom-right",
            "attention",
            "entropy",
        )
    },
    "grayscale": {"true": True, "false": False},
    "blur": {"0": 0, "50": 50, "100": 100},
    "sharpen": {"0": 0, "7": 7, "100": 100},
    "rotate": {"0": 0, "90": 90, "180": 180, "270": 270, "auto": "auto"},
    "flip": {"h": "h", "v": "v", "both": "both"},
}

# Forms every integer parameter refuses, whatever its range: the contract never normalises.
_NOT_INTEGERS = [
    "",  # w=
    "0800",  # a leading zero
    "00",
    "+8",  # a sign
    "-1",
    "-0",
    "8.0",  # a fraction
    "8.",
    "1e3",  # an exponent
    " 8",  # white space
    "8 ",
    "0x10",  # hex
    "\uff18",  # fullwidth digit eight
    "\u0668",  # Arabic-Indic digit eight
    "²",  # superscript: isdigit() is true for it in str, not in bytes
    "abc",
    "8px",
    "99999999999999999999",  # no overflow, no int() of it
    "1_000",  # Python's int() would take it
]
#: Per parameter, values that are malformed: each must be refused, by the parser and the signer.
MALFORMED: dict[str, list[str]] = {
    "w": [*_NOT_INTEGERS, "0", "10001", "100000"],
    "h": [*_NOT_INTEGERS, "0", "10001"],
    "q": [*_NOT_INTEGERS, "0", "101"],
    "blur": [*_NOT_INTEGERS, "101"],
    "sharpen": [*_NOT_INTEGERS, "101"],
    "fit": ["", "Cover", "COVER", " cover", "cover ", "none", "cov", "scale_down", "scaledown"],
    "aspect": ["", "Original", "16/9", "16:09", "16x9", "1:1.0", "2:1", "9:16", " 1:1"],
    "dpr": ["", "2.0", "1.50", "02", "0", "4", "2x", "1,5", ".5", "1.0", "+2", "\uff12"],
    "crop": ["", "Center", "centre", "top_left", "topleft", "north", "smart", "center "],
    "grayscale": ["", "True", "TRUE", "1", "0", "yes", "on", "t"],
    "rotate": ["", "360", "45", "-90", "90.0", "090", "Auto", "AUTO", "+90"],
    "flip": ["", "H", "V", "horizontal", "hv", "x", "both "],
}
