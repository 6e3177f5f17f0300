"""Ready-made settings for shops whose order JSON is publicly documented.

A configuration file says ``preset: shopify`` and gives what is its own
(``base_url``, the secret's environment variable); anything else it sets
replaces the preset's value, field by field.  Each preset is written in
exactly the form a configuration file takes (docs/configuration.md), and
each was checked against the platform's public API documentation:

- **Shopify**, Admin REST API (2024-10) Order and Fulfillment resources:
  ``orders.json?name=%23{number}&status=any``; ``order_number``,
  ``created_at``, ``cancelled_at``, ``financial_status``,
  ``fulfillment_status`` (null, fulfilled, partial, restocked),
  ``fulfillments[].tracking_company / tracking_number / tracking_url /
  shipment_status`` (label_printed … delivered, failure); the caller's
  phone through ``customers/search.json?query=phone:…`` then
  ``customers/{id}/orders.json``.
- **WooCommerce**, REST API v3 (``/wp-json/wc/v3/orders``): ``number``,
  ``status`` (pending, processing, on-hold, completed, cancelled,
  refunded, failed), ``date_created``, ``total``, ``currency``,
  ``billing.phone``, ``line_items[].quantity``; tracking from the
  Shipment Tracking extension's ``_wc_shipment_tracking_items`` order
  meta (``tracking_provider``, ``custom_tracking_provider``,
  ``tracking_number``, ``custom_tracking_link``, ``date_shipped`` in Unix
  seconds).
- **PrestaShop**, webservice (``/api/orders?output_format=JSON``,
  ``filter[field]=[value]``, ``display=full``, HTTP Basic with the key as
  user name): ``id``, ``current_state`` (ids of a default install's
  order_states), ``shipping_number``, ``id_carrier`` (ids differ from
  shop to shop: map them in your file), ``date_add``, ``total_paid``,
  ``associations.order_rows[].product_quantity``; the caller's phone
  through ``/api/addresses?filter[phone_mobile]=…``.
"""

from __future__ import annotations

SHOPIFY_API = "/admin/api/2024-10"

SHOPIFY = {
    "auth": {"header": "X-Shopify-Access-Token", "scheme": "token"},
    "order_by_number": {
        "path": SHOPIFY_API + "/orders.json?name=%23{number}&status=any",
        "orders": "orders",
    },
    "orders_by_phone": {
        "find": {
            "path": SHOPIFY_API + "/customers/search.json?query=phone:{phone}",
            "items": "customers",
            "value": "id",
        },
        "path": SHOPIFY_API + "/customers/{found}/orders.json?status=any",
        "orders": "orders",
    },
    "fields": {
        "number": "order_number",
        "phone": ["phone", "customer.phone", "billing_address.phone", "shipping_address.phone"],
        "status": [
            {"path": "cancelled_at", "if_present": "cancelled"},
            {"path": "fulfillment_status", "map": {"restocked": "cancelled"}, "unmapped": "next"},
            {"path": "financial_status", "map": {"refunded": "returned"}, "unmapped": "next"},
            {"path": "fulfillments.-1.shipment_status", "map": {
                "in_transit": "in_transit",
                "out_for_delivery": "out_for_delivery",
                "delivered": "delivered",
                "attempted_delivery": "delayed_carrier",
                "failure": "lost",
                # Known to the carrier but not moving yet: the order's own
                # fulfillment status says "shipped".
                "confirmed": None, "label_printed": None, "label_purchased": None,
                "ready_for_pickup": None,
            }},
            {"path": "fulfillment_status", "map": {
                None: "preparing",
                "partial": "shipped",
                "fulfilled": "shipped",
                "restocked": "cancelled",
            }},
        ],
        "carrier": {"path": "fulfillments.-1.tracking_company", "map": {
            "Colissimo": "colissimo", "La Poste": "colissimo", "Chronopost": "chronopost",
            "DPD": "dpd", "DPD Local": "dpd", "DPD UK": "dpd", "UPS": "ups",
            "Mondial Relay": "mondial_relay",
        }},
        "tracking_number": "fulfillments.-1.tracking_number",
        "tracking_url": "fulfillments.-1.tracking_url",
        "ordered_on": "created_at",
        "shipped_on": "fulfillments.-1.created_at",
        "items": {"path": "line_items.*.quantity", "sum": True},
        "total": "total_price",
        "currency": "currency",
    },
}

_WOO_TRACKING = "meta_data[key=_wc_shipment_tracking_items].value.-1"

WOOCOMMERCE = {
    "auth": {"header": "Authorization", "scheme": "basic"},
    "order_by_number": {
        "path": "/wp-json/wc/v3/orders/{number}",
    },
    "orders_by_phone": {
        "path": "/wp-json/wc/v3/orders?search={phone}&after={since}T00:00:00&per_page=20",
    },
    "fields": {
        "number": "number",
        "phone": ["billing.phone", "shipping.phone"],
        "status": {"path": "status", "map": {
            "pending": "preparing",
            "processing": "preparing",
            "on-hold": "preparing",
            "completed": "shipped",
            "cancelled": "cancelled",
            "failed": "cancelled",
            "refunded": "returned",
        }},
        "carrier": {"path": [_WOO_TRACKING + ".tracking_provider",
                             _WOO_TRACKING + ".custom_tracking_provider"], "map": {
            "colissimo": "colissimo", "la-poste": "colissimo", "chronopost": "chronopost",
            "dpd": "dpd", "dpd-fr": "dpd", "ups": "ups", "mondial-relay": "mondial_relay",
            "Mondial Relay": "mondial_relay",
        }},
        "tracking_number": _WOO_TRACKING + ".tracking_number",
        "tracking_url": _WOO_TRACKING + ".custom_tracking_link",
        "ordered_on": "date_created",
        "shipped_on": {"path": _WOO_TRACKING + ".date_shipped", "date": "timestamp"},
        "items": {"path": "line_items.*.quantity", "sum": True},
        "total": "total",
        "currency": "currency",
    },
}

_PRESTASHOP_ORDERS = "/api/orders?output_format=JSON&display=full"

PRESTASHOP = {
    "auth": {"header": "Authorization", "scheme": "basic"},
    "order_by_number": {
        # Callers key in digits: the order id.  Shops whose references are
        # digits can filter[reference] instead.
        "path": _PRESTASHOP_ORDERS + "&filter[id]=[{number}]",
        "orders": "orders",
    },
    "orders_by_phone": {
        "find": {
            "path": "/api/addresses?output_format=JSON&display=[id,id_customer]"
                    "&filter[phone_mobile]=[{phone_national}]",
            "items": "addresses",
            "value": "id_customer",
            "join": "|",
        },
        "path": _PRESTASHOP_ORDERS + "&filter[id_customer]=[{found}]&sort=[date_add_DESC]",
        "orders": "orders",
        # The order carries no phone: the address look-up matched it.
        "check_phone": False,
    },
    "fields": {
        "number": "id",
        "status": {"path": "current_state", "map": {
            1: "preparing",    # Awaiting check payment
            2: "preparing",    # Payment accepted
            3: "preparing",    # Processing in progress
            4: "shipped",      # Shipped
            5: "delivered",    # Delivered
            6: "cancelled",    # Canceled
            7: "returned",     # Refunded
            8: "cancelled",    # Payment error
            9: "preparing",    # On backorder (paid)
            10: "preparing",   # Awaiting bank wire payment
            11: "preparing",   # Remote payment accepted
            12: "preparing",   # On backorder (not paid)
            13: "preparing",   # Awaiting Cash On Delivery validation
        }},
        "carrier": {"path": "id_carrier", "map": {}, "unmapped": "drop"},
        "tracking_number": "shipping_number",
        "ordered_on": "date_add",
        "items": {"path": "associations.order_rows.*.product_quantity", "sum": True},
        "total": "total_paid",
        "currency": {"default": "EUR"},
    },
}

PRESETS = {"shopify": SHOPIFY, "woocommerce": WOOCOMMERCE, "prestashop": PRESTASHOP}
