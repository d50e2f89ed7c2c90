"""Generate the upstream database of the shop example: a small online shop in SQLite.

The data is synthetic but behaves like a real shop's: customers from a dozen countries
(with names in many scripts), a catalogue of products, orders placed in each customer's
local time zone (so timestamps carry offsets that change with daylight saving time),
order lines, payments and refunds, and product reviews. It is fully deterministic: the
same ``--seed`` and ``--scale`` always give the same rows, so runs are reproducible.

Usage::

    python generate.py                      # upstream/shop.db beside this script
    python generate.py --scale 0.1          # a tenth of the rows, for quick tries
    python generate.py --path /tmp/shop.db --seed 7

The file is written to a temporary name and moved into place at the end, so a reader
never sees a half-written database.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import os
import sqlite3
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from random import Random

HERE = Path(__file__).resolve().parent
DEFAULT_PATH = HERE / "upstream" / "shop.db"

#: rows per table at scale 1
BASE_ROWS = {"customers": 5_000, "products": 500, "orders": 60_000, "product_reviews": 8_000}

#: the shop's history: first signup, first order, and the day the data was "extracted"
SIGNUPS_FROM = date(2022, 1, 1)
ORDERS_FROM = date(2023, 1, 1)
LAST_DAY = date(2025, 6, 30)
EPOCH = datetime(1970, 1, 1)
#: reviews carry the review platform's 64-bit "snowflake" message ids, counted from here
SNOWFLAKE_EPOCH_MS = 1_288_834_974_657

SCHEMA = """
CREATE TABLE customers (
    customer_id      INTEGER PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE,
    full_name        TEXT NOT NULL,
    nickname         TEXT,
    country          TEXT NOT NULL,
    signup_date      DATE NOT NULL,
    is_active        BOOLEAN NOT NULL,
    marketing_opt_in BOOLEAN,
    created_at       TIMESTAMP NOT NULL
);
CREATE TABLE products (
    product_id   INTEGER PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    category     TEXT NOT NULL,
    unit_price   DECIMAL(10,2) NOT NULL,
    weight_kg    DECIMAL(8,3),
    discontinued BOOLEAN NOT NULL
);
CREATE TABLE orders (
    order_id     INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (customer_id),
    status       TEXT NOT NULL,
    ordered_at   TIMESTAMPTZ NOT NULL,
    shipped_on   DATE,
    shipping_fee DECIMAL(8,2),
    coupon_code  TEXT,
    notes        TEXT
);
CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders (order_id),
    product_id    INTEGER NOT NULL REFERENCES products (product_id),
    quantity      INTEGER NOT NULL,
    unit_price    DECIMAL(10,2) NOT NULL,
    discount_pct  DECIMAL(5,2),
    UNIQUE (order_id, product_id)
);
CREATE TABLE payments (
    payment_id   INTEGER PRIMARY KEY,
    order_id     INTEGER NOT NULL REFERENCES orders (order_id),
    method       TEXT NOT NULL,
    amount       DECIMAL(12,2) NOT NULL,
    paid_at      TIMESTAMPTZ NOT NULL,
    is_refund    BOOLEAN NOT NULL,
    provider_ref UUID
);
CREATE TABLE product_reviews (
    review_id           INTEGER PRIMARY KEY,
    product_id          INTEGER NOT NULL REFERENCES products (product_id),
    customer_id         INTEGER NOT NULL REFERENCES customers (customer_id),
    rating              SMALLINT NOT NULL,
    title               TEXT NOT NULL,
    body                TEXT,
    sentiment           DOUBLE,
    platform_message_id BIGINT NOT NULL UNIQUE,
    reviewed_at         TIMESTAMP NOT NULL
);
"""

INDEXES = """
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX order_items_order ON order_items (order_id);
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX product_reviews_product ON product_reviews (product_id);
"""

# ------------------------------------------------------------------------- time zones


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def _seconds(day: date, hour: int = 0) -> int:
    """Seconds since 1970 of a UTC wall time."""
    return (day - EPOCH.date()).days * 86_400 + hour * 3_600


YEARS = range(SIGNUPS_FROM.year - 1, LAST_DAY.year + 2)
#: EU summer time: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC
EU_DST = [(_seconds(_last_sunday(y, 3), 1), _seconds(_last_sunday(y, 10), 1)) for y in YEARS]


def _us_dst(base_hours: int) -> list[tuple[int, int]]:
    """US daylight time: 2nd Sunday of March 02:00 to 1st Sunday of November 02:00, local."""
    return [
        (_seconds(_nth_sunday(y, 3, 2), 2 - base_hours), _seconds(_nth_sunday(y, 11, 1), 1 - base_hours)) for y in YEARS
    ]


class Zone:
    """A fixed UTC offset, plus one hour during its daylight saving periods."""

    def __init__(self, base_minutes: int, dst: Sequence[tuple[int, int]] = ()):
        self.base = base_minutes
        self.dst = [(start * 1_000_000, end * 1_000_000) for start, end in dst]

    def offset(self, epoch_us: int) -> int:
        """The offset from UTC, in minutes, at an instant."""
        for start, end in self.dst:
            if start <= epoch_us < end:
                return self.base + 60
        return self.base


UTC = Zone(0)
CET = Zone(60, EU_DST)  # Berlin, Paris, Madrid, Warsaw ...
ZONES = {
    "CET": CET,
    "GMT": Zone(0, EU_DST),  # London, Lisbon
    "EET": Zone(120, EU_DST),  # Kyiv, Helsinki
    "EST": Zone(-300, _us_dst(-5)),  # New York
    "PST": Zone(-480, _us_dst(-8)),  # Los Angeles
    "IST": Zone(330),  # India, +05:30 all year
    "CST": Zone(480),  # China
    "JST": Zone(540),  # Japan
    "BRT": Zone(-180),  # Brazil
}


#: "+05:30" style suffixes by offset in minutes, -12:00 to +14:00 in quarter hours
OFFSET_TEXT = {m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in range(-720, 841, 15)}


def format_instant(epoch_us: int, zone: Zone) -> str:
    """An instant as ISO-8601 text in a zone's local time, with its offset and microseconds."""
    minutes = zone.offset(epoch_us)
    local = EPOCH + timedelta(microseconds=epoch_us + minutes * 60_000_000)
    return local.isoformat(timespec="microseconds") + OFFSET_TEXT[minutes]


def format_naive(epoch_us: int) -> str:
    """A UTC instant as naive 'YYYY-MM-DD HH:MM:SS.ffffff' text."""
    return (EPOCH + timedelta(microseconds=epoch_us)).isoformat(sep=" ", timespec="microseconds")


def _day_us(day: date) -> int:
    return (day - EPOCH.date()).days * 86_400_000_000


DAY_US = 86_400_000_000

# --------------------------------------------------------------------------- people

# country, weight, zones, first names, last names, e-mail domains
COUNTRIES: list[tuple[str, int, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = [
    (
        "DE",
        24,
        ("CET",),
        ("Lukas", "Anna", "Jürgen", "Sophie", "Maximilian", "Lea", "Günther", "Marie", "Felix", "Zoë"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Groß", "Becker", "Hoffmann", "Schäfer"),
        ("gmx.de", "web.de", "t-online.de", "gmail.com"),
    ),
    (
        "FR",
        10,
        ("CET",),
        ("Chloé", "Théo", "Camille", "Hélène", "François", "Léa", "Inès", "Jérôme", "Zoë"),
        ("Martin", "Bernard", "Dubois", "Lefèvre", "Mercier", "Girard", "Bélanger", "Rousseau"),
        ("orange.fr", "free.fr", "gmail.com"),
    ),
    (
        "ES",
        6,
        ("CET",),
        ("José", "María", "Lucía", "Sofía", "Martín", "Nuria", "Íñigo", "Begoña"),
        ("García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Muñoz", "Ibáñez"),
        ("gmail.com", "hotmail.es", "telefonica.net"),
    ),
    (
        "PL",
        6,
        ("CET",),
        ("Łukasz", "Agnieszka", "Paweł", "Małgorzata", "Wojciech", "Zofia", "Michał"),
        ("Kowalski", "Nowak", "Wiśniewska", "Wójcik", "Kamiński", "Lewandowska", "Zieliński"),
        ("wp.pl", "onet.pl", "gmail.com"),
    ),
    (
        "DK",
        4,
        ("CET",),
        ("Søren", "Mette", "Jens", "Astrid", "Ditte", "Rasmus", "Freja"),
        ("Nielsen", "Jensen", "Hansen", "Sørensen", "Møller", "Kjær", "Ørsted"),
        ("mail.dk", "gmail.com"),
    ),
    (
        "NL",
        5,
        ("CET",),
        ("Daan", "Sanne", "Bram", "Fleur", "Joëlle", "Ruud", "Noor"),
        ("de Vries", "van den Berg", "Jansen", "Bakker", "Visser", "Smit", "de Jong"),
        ("ziggo.nl", "kpnmail.nl", "gmail.com"),
    ),
    (
        "GB",
        12,
        ("GMT",),
        ("Oliver", "Amelia", "Harry", "Isla", "George", "Siobhán", "Niamh", "Jack"),
        ("Smith", "Jones", "Taylor", "Brown", "O'Brien", "Davies", "Evans", "MacDonald"),
        ("btinternet.com", "gmail.com", "outlook.com"),
    ),
    (
        "UA",
        3,
        ("EET",),
        ("Ангелина", "Олександр", "Марія", "Дмитро", "Софія", "Андрій"),
        ("Шевченко", "Коваленко", "Бондаренко", "Ткаченко", "Мельник"),
        ("ukr.net", "gmail.com"),
    ),
    (
        "US",
        16,
        ("EST", "EST", "PST"),
        ("James", "Emily", "Michael", "Olivia", "DeShawn", "Zoë", "Ava", "Ethan", "Renée"),
        ("Johnson", "Williams", "Garcia", "Miller", "Rodriguez", "Nguyen", "O'Connor", "Kim"),
        ("gmail.com", "yahoo.com", "icloud.com", "outlook.com"),
    ),
    (
        "IN",
        5,
        ("IST",),
        ("Aarav", "Priya", "Vihaan", "Ananya", "Rohan", "Diya"),
        ("Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair"),
        ("gmail.com", "rediffmail.com"),
    ),
    ("CN", 3, ("CST",), (), (), ("qq.com", "163.com")),
    (
        "JP",
        3,
        ("JST",),
        ("Shōhei", "Yūki", "Haruto", "Sakura", "Ren", "Aoi"),
        ("Ōtani", "Satō", "Suzuki", "Takahashi", "Itō", "Watanabe"),
        ("docomo.ne.jp", "yahoo.co.jp", "gmail.com"),
    ),
    (
        "BR",
        3,
        ("BRT",),
        ("João", "Ana", "Gonçalo", "Letícia", "Caio", "Mônica"),
        ("Silva", "Santos", "Araújo", "Conceição", "Gonçalves", "Magalhães"),
        ("uol.com.br", "gmail.com"),
    ),
]

CHINESE_NAMES = ("李雷", "韩梅梅", "王芳", "张伟", "刘洋", "陈静", "杨磊", "赵敏")
CHINESE_LATIN = ("li.lei", "han.meimei", "wang.fang", "zhang.wei", "liu.yang", "chen.jing", "yang.lei", "zhao.min")
NICKNAMES = ("Jay", "Lulu", "Max", "Bee", "Kiki", "Doc", "Ace", "Mimi", "Bo", "Sunny")
EMOJI_NICKNAMES = ("Zoë 🌻", "Big Al 🚀", "🐼 Panda", "Coffee ☕ addict", "Kat 🐈", "DJ 🎧 Søren", "✨Lulu✨")


#: Ukrainian letters in the national transliteration, for e-mail addresses
CYRILLIC = {
    **dict(zip("абвгґдезиійклмнопрстуф", "abvhgdezyiiklmnoprstuf", strict=True)),
    **{"є": "ye", "ж": "zh", "ї": "yi", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch"},
    **{"ь": "", "ю": "yu", "я": "ya", "ё": "e"},
}


def _ascii_slug(text: str) -> str:
    """A name folded to lower-case ASCII letters for an e-mail address ("Łukasz" -> "lukasz")."""
    text = "".join(CYRILLIC.get(ch, ch) for ch in text.lower())
    text = text.replace("ł", "l").replace("ø", "o").replace("ß", "ss").replace("æ", "ae")
    folded = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in folded.encode("ascii", "ignore").decode().lower() if ch.isalnum())


def _customers(rng: Random, n: int) -> tuple[list[tuple], list[str], list[int]]:
    """Customer rows, each customer's zone name, and each customer's signup day number."""
    weights = list(itertools.accumulate(c[1] for c in COUNTRIES))
    span = (LAST_DAY - SIGNUPS_FROM).days
    # signup days, sorted, so customer ids grow with signup time (as a real sequence would)
    days = sorted(int(span * rng.random() ** 0.8) for _ in range(n))
    days[0] = 0  # the founders' test account: someone can always place the first order
    rows: list[tuple] = []
    zones: list[str] = []
    used_emails: set[str] = set()
    for customer_id, day in enumerate(days, start=1):
        country, _, zone_names, firsts, lasts, domains = COUNTRIES[bisect.bisect(weights, rng.random() * weights[-1])]
        if country == "CN":
            pick = rng.randrange(len(CHINESE_NAMES))
            full_name, local = CHINESE_NAMES[pick], CHINESE_LATIN[pick]
            first = full_name
        else:
            first, last = rng.choice(firsts), rng.choice(lasts)
            full_name = f"{first} {last}"
            local = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
            if rng.random() < 0.3:
                local = f"{_ascii_slug(first)[0]}{_ascii_slug(last)}"
        email = f"{local}@{rng.choice(domains)}"
        if email in used_emails:
            email = f"{local}{customer_id}@{rng.choice(domains)}"
        used_emails.add(email)
        roll = rng.random()
        if roll < 0.02:
            nickname: str | None = rng.choice(EMOJI_NICKNAMES)
        elif roll < 0.25:
            nickname = rng.choice(NICKNAMES) if rng.random() < 0.6 else first
        else:
            nickname = None
        signup = SIGNUPS_FROM + timedelta(days=day)
        created_us = _day_us(signup) + rng.randrange(DAY_US)
        opt = rng.random()
        marketing = None if opt < 0.15 else int(opt < 0.55)
        rows.append(
            (
                customer_id,
                email,
                full_name,
                nickname,
                country,
                signup.isoformat(),
                int(rng.random() < 0.92),
                marketing,
                format_naive(created_us),
            )
        )
        zones.append(rng.choice(zone_names))
    return rows, zones, days


# ------------------------------------------------------------------------- products

CATALOGUE: dict[str, tuple[tuple[str, float, float | None], ...]] = {
    # category: (name, typical price, typical weight in kg or None)
    "kitchen": (
        ("Crème brûlée mould", 14.5, 0.35),
        ("Café grinder – Ø58mm", 129.0, 2.1),
        ("Cast-iron skillet 28 cm", 49.9, 3.2),
        ("Chef's knife 21 cm", 89.0, 0.25),
        ("Pasta maker", 59.0, 2.8),
        ("Espresso tamper Ø58mm", 24.9, 0.45),
        ("Moka pot, 6 cups", 34.9, 0.6),
        ("Bamboo cutting board", 19.9, 1.1),
    ),
    "home": (
        ("Linen duvet cover", 79.0, 1.4),
        ("Wool throw «Nordlys»", 69.0, 1.2),
        ("Ceramic vase", 29.9, 0.9),
        ("Scented candle – Figue", 18.5, 0.4),
        ("Doormat 'Welcome'", 22.0, 1.5),
    ),
    "garden": (
        ("Pruning shears", 27.5, 0.3),
        ("Watering can 10 l", 21.0, 0.8),
        ("Raised bed kit", 149.0, 18.0),
        ("Seed set: Kräuter", 9.9, 0.1),
    ),
    "electronics": (
        ("USB-C charger 65 W", 39.9, 0.2),
        ("Noise-cancelling headphones", 199.0, 0.3),
        ("Smart plug", 14.9, 0.1),
        ("E-reader 6″", 119.0, 0.2),
        ("Bluetooth speaker", 59.9, 0.55),
    ),
    "outdoor": (
        ("Trail backpack 28 l", 99.0, 1.1),
        ("Insulated bottle 0.75 l", 27.0, 0.4),
        ("Camping stove", 44.9, 0.9),
        ("Headlamp 400 lm", 34.0, 0.1),
    ),
    "books": (
        ("Cookbook: Smørrebrød", 32.0, 0.9),
        ("Field guide to mushrooms", 24.0, 0.7),
        ("Notebook A5, dotted", 12.9, 0.3),
    ),
    "digital": (
        ("Gift card", 50.0, None),
        ("E-book: Home barista", 9.99, None),
        ("Online course: Sourdough", 39.0, None),
    ),
}
VARIANTS = (
    "",
    " – black",
    " – white",
    " – sage green",
    " (large)",
    " (small)",
    " – terracotta",
    " v2",
    " – édition limitée",
    " – navy",
    " (set of 2)",
    " – oak",
    " – walnut",
    " (travel size)",
    " – mustard",
    " – Pro",
)


def _products(rng: Random, n: int) -> list[tuple]:
    bases = [(cat, *item) for cat, items in CATALOGUE.items() for item in items]
    assert math.gcd(7, len(bases)) == 1
    rows = []
    for product_id in range(1, n + 1):
        # step through the catalogue with a stride, so even a small scale has every category
        base_index = (product_id - 1) * 7 % len(bases)
        variant = VARIANTS[((product_id - 1) // len(bases)) % len(VARIANTS)]
        generation = (product_id - 1) // (len(bases) * len(VARIANTS))
        category, name, price, weight = bases[base_index]
        if generation:
            name += f" – series {generation + 1}"
        cents = max(99, int(price * 100 * rng.uniform(0.8, 1.3)))
        cents = cents - cents % 100 + rng.choice((0, 49, 90, 95, 99))
        weight_kg = None if weight is None else round(weight * rng.uniform(0.85, 1.2), 3)
        sku = f"{category[:3].upper()}-{product_id:05d}"
        rows.append((product_id, sku, name + variant, category, cents / 100, weight_kg, int(rng.random() < 0.08)))
    return rows


# --------------------------------------------------------------------------- orders

COUPONS = ("WELCOME10", "SPRING25", "BLACKFRIDAY", "VIP-2024", "NEWSLETTER5", "SUMMER-SALE", "ÉTÉ15")
NOTES = (
    'Please leave the parcel at the back door, next to the "blue" bin.',
    "Gift – please don't include the invoice. Thanks! 🎁",
    "Call before delivery: +49 30 1234567",
    'Ring twice,\nthen wait.\n"Beware of the dog" 🐕',
    "Deliver after 6pm, please; I work late.",
    "Bitte beim Nachbarn (Müller, 2. OG) abgeben.",
    "Neighbour's name is O'Neill, flat 3, they can sign.",
    "Address line 2:\nc/o Søren Kjær\nBagsværd",
    "Rush order!!! 🚀🚀 birthday on Friday",
    'Paid via bank transfer, reference: INV-2024-0042, "urgent"',
)
DISCOUNTS_BP = (500, 1000, 1250, 1500, 2000, 2500, 3333)  # discount_pct in basis points
ITEM_COUNTS = list(range(1, 10))
ITEM_COUNT_WEIGHTS = list(itertools.accumulate((15, 20, 20, 15, 12, 8, 5, 3, 2)))
QUANTITIES = (1, 2, 3, 4, 6)
QUANTITY_WEIGHTS = list(itertools.accumulate((70, 18, 7, 3, 2)))
FEES_CENTS = (495, 590, 990, 1450)
METHODS = ("card", "paypal", "bank_transfer", "gift_card")
METHOD_WEIGHTS = list(itertools.accumulate((60, 25, 10, 5)))
#: the "company" time zone of the bank the shop's transfers land in
BANK_ZONE = CET
#: EU daylight saving changes during the order history, as epoch microseconds
DST_CHANGES_US = [instant for pair in CET.dst for instant in pair]


def _status(rng: Random, age_days: int) -> str:
    roll = rng.random()
    if age_days <= 2:
        return "placed" if roll < 0.4 else "paid" if roll < 0.8 else "shipped"
    if age_days <= 7:
        return "paid" if roll < 0.15 else "shipped" if roll < 0.6 else "delivered"
    if roll < 0.05:
        return "cancelled"
    if roll < 0.08:
        return "refunded"
    if roll < 0.09:
        return "placed"  # abandoned bank transfers that never arrived
    if roll < 0.10:
        return "shipped"  # lost in transit
    return "delivered"


def _uuid(rng: Random) -> str:
    """A random (version 4) UUID in canonical lower-case form."""
    bits = rng.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _orders(
    rng: Random,
    n_orders: int,
    customers: list[tuple],
    zones: list[str],
    signup_days: list[int],
    products: list[tuple],
) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    """Orders, order items, payments (unsorted, without ids) and deliveries for reviews."""
    end_us = _day_us(LAST_DAY + timedelta(days=1)) - 1
    # order volume grows over time, peaks in November/December and at weekends
    days = [ORDERS_FROM + timedelta(days=i) for i in range((LAST_DAY - ORDERS_FROM).days + 1)]
    day_weights = list(
        itertools.accumulate(
            (1 + i / 400) * (1.6 if d.month in (11, 12) else 1.0) * (1.25 if d.weekday() >= 5 else 1.0)
            for i, d in enumerate(days)
        )
    )
    order_days = sorted(rng.choices(days, cum_weights=day_weights, k=n_orders))
    # some customers buy far more than others
    propensity = list(itertools.accumulate(min(rng.paretovariate(1.2), 25.0) for _ in customers))
    product_weights = list(itertools.accumulate(1 / (1 + i) ** 0.7 for i in range(len(products))))
    # prices went up 5% on 2024-07-01: order lines keep the price paid at the time
    new_cents = [round(p[4] * 100) for p in products]
    old_cents = [max(99, round(c * 0.95)) for c in new_cents]
    product_ids = [p[0] for p in products]
    product_range = range(len(products))
    price_rise = date(2024, 7, 1)
    random = rng.random
    find = bisect.bisect

    picks = []
    for day in order_days:
        eligible = bisect.bisect_left(signup_days, (day - SIGNUPS_FROM).days)
        customer = min(find(propensity, random() * propensity[eligible - 1]), eligible - 1)
        zone = ZONES[zones[customer]]
        at_us = _day_us(day) + int(random() * DAY_US)
        if zone.dst and random() < 0.004:
            # a night around a daylight saving change: the local clock jumps or repeats an hour
            change = DST_CHANGES_US[find(DST_CHANGES_US, at_us) - 1]
            moved = change + rng.randrange(-3 * 3_600_000_000, 3 * 3_600_000_000)
            created_us = _day_us(date.fromisoformat(customers[customer][5])) + DAY_US
            if moved >= created_us and moved >= _day_us(ORDERS_FROM):
                at_us = moved
        picks.append((at_us, customer))
    picks.sort()

    orders: list[tuple] = []
    items: list[tuple] = []
    payments: list[tuple] = []
    deliveries: list[tuple] = []
    append_item = items.append
    item_id = 0
    # draw the lines of all orders at once (much faster than order by order)
    counts = rng.choices(ITEM_COUNTS, cum_weights=ITEM_COUNT_WEIGHTS, k=len(picks))
    drawn = rng.choices(product_range, cum_weights=product_weights, k=sum(counts))
    quantities = rng.choices(QUANTITIES, cum_weights=QUANTITY_WEIGHTS, k=len(drawn))
    ends = list(itertools.accumulate(counts))
    for order_id, (at_us, customer) in enumerate(picks, start=1):
        customer_id = customer + 1
        zone = ZONES[zones[customer]]
        day = (EPOCH + timedelta(microseconds=at_us)).date()
        status = _status(rng, (LAST_DAY - day).days)
        end = ends[order_id - 1]
        # a product appears once per order: repeated draws are dropped
        chosen = dict.fromkeys(drawn[end - counts[order_id - 1] : end])
        prices = old_cents if day < price_rise else new_cents
        subtotal = 0
        order_has_coupon = random() < 0.12
        for position, index in enumerate(chosen, start=end - counts[order_id - 1]):
            item_id += 1
            cents = prices[index]
            quantity = quantities[position]
            if order_has_coupon or random() < 0.08:
                discount = DISCOUNTS_BP[int(random() * len(DISCOUNTS_BP))]
                # quantity * unit_price * (1 - discount_pct / 100), rounded half up to cents
                subtotal += (cents * quantity * (10_000 - discount) + 5_000) // 10_000
                append_item((item_id, order_id, product_ids[index], quantity, cents / 100, discount / 100))
            else:
                subtotal += cents * quantity
                append_item((item_id, order_id, product_ids[index], quantity, cents / 100, None))
        # shipping: free above 100.00, not recorded for click & collect orders
        fee: int | None = 0 if subtotal >= 10_000 else rng.choice(FEES_CENTS)
        if rng.random() < 0.06:
            fee = None
        total = subtotal + (fee or 0)
        shipped_on = None
        if status in ("shipped", "delivered", "refunded"):
            shipped_day = day + timedelta(days=rng.choice((0, 1, 1, 1, 2, 2, 3, 5)))
            shipped_on = min(shipped_day, LAST_DAY)
        note = rng.choice(NOTES) if rng.random() < 0.03 else None
        orders.append(
            (
                order_id,
                customer_id,
                status,
                format_instant(at_us, zone),
                shipped_on and shipped_on.isoformat(),
                None if fee is None else fee / 100,
                rng.choice(COUPONS) if order_has_coupon else None,
                note,
            )
        )
        if status in ("placed", "cancelled"):
            continue
        if status == "delivered" and shipped_on is not None:
            deliveries.append((shipped_on, customer_id, [product_ids[i] for i in chosen]))

        # payments: normally one, sometimes a gift card plus a card for the rest
        method = METHODS[find(METHOD_WEIGHTS, random() * METHOD_WEIGHTS[-1])]
        if method == "bank_transfer":
            paid_us = at_us + rng.randrange(3_600_000_000, 2 * DAY_US)
            if paid_us > end_us:
                paid_us = at_us + rng.randrange(60_000_000, 600_000_000)
        else:
            paid_us = at_us + 5_000_000 + int(random() * 595_000_000)  # seconds to minutes later
        anomaly = rng.random()
        charged = total
        if anomaly < 0.001 and fee:
            charged = subtotal  # the shipping fee was not charged (a known checkout bug)
        parts = []
        if method != "gift_card" and charged > 2_000 and rng.random() < 0.03:
            gift = min(rng.choice((1_000, 2_500, 5_000)), charged - 100)
            parts.append(("gift_card", gift))
            charged -= gift
        parts.append((method, charged))
        if anomaly > 0.9995:
            parts.append((method, charged))  # charged twice
        for part_method, amount in parts:
            payments.append((paid_us, order_id, part_method, amount, False, customer))
        if status == "refunded":
            base = shipped_on or day
            refund_us = _day_us(base) + rng.randrange(5 * DAY_US, 20 * DAY_US)
            refund_us = min(max(refund_us, paid_us + 60_000_000), end_us)
            for part_method, amount in parts:
                payments.append((refund_us, order_id, part_method, amount, True, customer))
    return orders, items, payments, deliveries


def _payment_rows(rng: Random, payments: list[tuple], zones: list[str]) -> Iterator[tuple]:
    """Payments in time order (so ids grow with time), as rows."""
    payments.sort(key=lambda p: (p[0], p[1], p[4]))
    for payment_id, (paid_us, order_id, method, cents, is_refund, customer) in enumerate(payments, start=1):
        if method == "card":
            zone = UTC  # the card processor reports UTC
        elif method == "bank_transfer":
            zone = BANK_ZONE
        else:
            zone = ZONES[zones[customer]]
        reference = None if method == "gift_card" else _uuid(rng)
        yield (
            payment_id,
            order_id,
            method,
            cents / 100,
            format_instant(paid_us, zone),
            int(is_refund),
            reference,
        )


# -------------------------------------------------------------------------- reviews

TITLES = {
    5: ("Love it!", "Perfect 👌", "Exactly as described", "Super Qualität", "Très bien"),
    4: ("Very good", "Nice, but pricey", "Good value", "Works well"),
    3: ("It's OK", "Average", "Does the job, nothing more"),
    2: ("Disappointing", "Not as pictured", "Arrived late"),
    1: ("Broke after a week", "Do not buy ☹️", "Refund requested"),
}
BODIES = (
    "Used it every day for a month, no complaints.",
    "The colour is a bit different from the photo,\nbut I'm happy with it.",
    'My partner says it\'s "the best purchase this year".',
    "Schnelle Lieferung, gute Verpackung.",
    "Packaging was damaged, product fine.",
    "素晴らしい！また買います。",
    "Smaller than I expected; check the dimensions.",
    "Customer service replied within an hour. 👍",
)
RATINGS = (5, 4, 3, 2, 1)
RATING_WEIGHTS = list(itertools.accumulate((45, 30, 12, 6, 7)))


def _reviews(rng: Random, n: int, deliveries: list[tuple]) -> Iterator[tuple]:
    if not deliveries:
        return
    # a review is about one product of a delivered order, written days or weeks later
    picked = []
    for shipped, customer_id, product_ids in (rng.choice(deliveries) for _ in range(n)):
        written_us = _day_us(shipped) + rng.randrange(2 * DAY_US, 40 * DAY_US)
        picked.append((written_us, customer_id, rng.choice(product_ids)))
    picked.sort()
    end_us = _day_us(LAST_DAY + timedelta(days=1)) - 1
    for review_id, (at_us, customer_id, product_id) in enumerate(picked, start=1):
        at_us = min(at_us, end_us)
        rating = RATINGS[bisect.bisect(RATING_WEIGHTS, rng.random() * RATING_WEIGHTS[-1])]
        body = rng.choice(BODIES) if rng.random() < 0.6 else None
        # a model's sentiment score in [-1, 1]; only computed for reviews with a body
        sentiment = None if body is None else max(-1.0, min(1.0, (rating - 3) / 2 + rng.gauss(0, 0.25)))
        snowflake = ((at_us // 1_000 - SNOWFLAKE_EPOCH_MS) << 22) | (review_id & 0x3FFFFF)
        yield (
            review_id,
            product_id,
            customer_id,
            rating,
            rng.choice(TITLES[rating]),
            body,
            sentiment,
            snowflake,
            format_naive(at_us),
        )


# ---------------------------------------------------------------------------- main


def _scaled(table: str, scale: float) -> int:
    return max(1, round(BASE_ROWS[table] * scale))


def generate(path: Path, scale: float = 1.0, seed: int = 42) -> dict[str, int]:
    """Write the upstream database to ``path`` (replacing it atomically); rows per table."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = Random(seed)
    customers, zones, signup_days = _customers(rng, max(10, _scaled("customers", scale)))
    products = _products(rng, max(10, _scaled("products", scale)))
    orders, items, payments, deliveries = _orders(
        rng, _scaled("orders", scale), customers, zones, signup_days, products
    )

    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(temp_name, 0o644)  # mkstemp makes the file private; a database is not secret
    try:
        con = sqlite3.connect(temp_name, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("PRAGMA locking_mode=EXCLUSIVE")
            con.execute("PRAGMA cache_size=-131072")
            con.execute("BEGIN")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?)", customers)
            con.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?)", products)
            con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?)", orders)
            con.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?)", items)
            con.executemany("INSERT INTO payments VALUES (?,?,?,?,?,?,?)", _payment_rows(rng, payments, zones))
            con.executemany(
                "INSERT INTO product_reviews VALUES (?,?,?,?,?,?,?,?,?)",
                _reviews(rng, _scaled("product_reviews", scale), deliveries),
            )
            for statement in INDEXES.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute("COMMIT")
            counts = {
                table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
            }
        finally:
            con.close()
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the shop example's upstream SQLite database.")
    parser.add_argument(
        "--path",
        type=Path,
        default=DEFAULT_PATH,
        help="database file to write (default: upstream/shop.db in this script's folder)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="row count multiplier (default: 1.0)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    path = args.path
    started = time.perf_counter()
    counts = generate(path, scale=args.scale, seed=args.seed)
    elapsed = time.perf_counter() - started
    width = max(len(t) for t in counts)
    for table, rows in counts.items():
        print(f"  {table:<{width}}  {rows:>9,}")
    print(f"wrote {path} ({sum(counts.values()):,} rows in {elapsed:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
