-- Orders whose money received does not match what they should have cost:
-- payments count in, refunds count out; revenue orders should net their total,
-- every other order (placed, cancelled, refunded) should net zero.
WITH movements AS (
    SELECT order_id, 'payment' AS kind, amount
    FROM shop.payments
    WHERE NOT is_refund
    UNION ALL
    SELECT order_id, 'refund' AS kind, -amount AS amount
    FROM shop.payments
    WHERE is_refund
),
net AS (
    SELECT
        order_id,
        count(*) FILTER (WHERE kind = 'payment') AS payment_count,
        count(*) FILTER (WHERE kind = 'refund') AS refund_count,
        CAST(sum(amount) AS DECIMAL(14, 2)) AS net_received
    FROM movements
    GROUP BY order_id
),
expected AS (
    SELECT
        o.order_id,
        o.customer_id,
        o.status,
        o.ordered_at,
        o.order_total,
        CAST(CASE WHEN o.is_revenue THEN o.order_total ELSE 0 END AS DECIMAL(14, 2)) AS expected_amount,
        coalesce(n.payment_count, 0) AS payment_count,
        coalesce(n.refund_count, 0) AS refund_count,
        coalesce(n.net_received, 0.00) AS net_received
    FROM analytics.orders_enriched AS o
    LEFT JOIN net AS n ON n.order_id = o.order_id
)
SELECT
    order_id,
    customer_id,
    status,
    ordered_at,
    order_total,
    expected_amount,
    net_received,
    net_received - expected_amount AS difference,
    payment_count,
    refund_count,
    CASE
        WHEN net_received = 0 THEN 'unpaid'
        WHEN net_received < expected_amount THEN 'underpaid'
        ELSE 'overpaid'
    END AS issue
FROM expected
WHERE net_received <> expected_amount
