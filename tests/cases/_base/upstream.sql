-- The upstream SQLite database of every case (tests build upstream.db from it).
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    active BOOLEAN,
    created_at TIMESTAMPTZ
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    amount NUMERIC(10,2),
    note TEXT,
    paid BOOLEAN NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL
);
