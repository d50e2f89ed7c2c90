-- Payments and refunds summed per order.
SELECT
    order_id,
    count(*) FILTER (WHERE NOT is_refund) AS payment_count,
    count(*) FILTER (WHERE is_refund) AS refund_count,
    CAST(coalesce(sum(amount) FILTER (WHERE NOT is_refund), 0) AS DECIMAL(14, 2)) AS paid_amount,
    CAST(coalesce(sum(amount) FILTER (WHERE is_refund), 0) AS DECIMAL(14, 2)) AS refunded_amount,
    min(paid_at) FILTER (WHERE NOT is_refund) AS first_paid_at,
    max(paid_at) FILTER (WHERE is_refund) AS last_refunded_at,
    string_agg(DISTINCT method, ',' ORDER BY method) AS methods
FROM shop.payments
GROUP BY order_id
