-- One row per order: the customer's country, the order's value from its lines,
-- and what was paid. The base table for revenue reporting.
WITH totals AS (
    SELECT
        order_id,
        count(*) AS line_count,
        CAST(sum(quantity) AS BIGINT) AS units,
        CAST(sum(gross_amount) AS DECIMAL(14, 2)) AS items_gross,
        CAST(sum(line_total) AS DECIMAL(14, 2)) AS items_total
    -- unqualified: resolved in this relation's own schema, analytics
    FROM order_lines
    GROUP BY order_id
)
SELECT
    o.order_id,
    o.customer_id,
    c.country,
    o.status,
    o.status IN ('paid', 'shipped', 'delivered') AS is_revenue,
    o.ordered_at,
    -- the reporting day is the UTC day, whatever the customer's time zone
    CAST(o.ordered_at AT TIME ZONE 'UTC' AS DATE) AS order_date,
    o.shipped_on,
    o.coupon_code,
    t.line_count,
    t.units,
    t.items_gross,
    t.items_total,
    CAST(coalesce(o.shipping_fee, 0) AS DECIMAL(8, 2)) AS shipping_fee,
    CAST(t.items_total + coalesce(o.shipping_fee, 0) AS DECIMAL(14, 2)) AS order_total,
    coalesce(p.paid_amount, 0.00) AS paid_amount,
    coalesce(p.refunded_amount, 0.00) AS refunded_amount,
    row_number() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at, o.order_id) AS customer_order_number
FROM shop.orders AS o
JOIN shop.customers AS c ON c.customer_id = o.customer_id
JOIN totals AS t ON t.order_id = o.order_id
LEFT JOIN analytics.order_payments AS p ON p.order_id = o.order_id
