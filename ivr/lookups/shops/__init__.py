"""Order look-ups against a shop's own HTTP API (Shopify, WooCommerce,
PrestaShop or any JSON API), configured by a YAML file
(docs/configuration.md)."""

from ivr.lookups.shops.config import ShopConfig, ShopConfigError, load_config
from ivr.lookups.shops.http import HttpOrderLookups, OrderLookupsService

__all__ = ["HttpOrderLookups", "OrderLookupsService", "ShopConfig", "ShopConfigError", "load_config"]
