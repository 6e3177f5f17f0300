"""Order look-ups against a shop's own HTTP API (Shopify, WooCommerce,
PrestaShop or any JSON API), configured by a YAML file
(docs/configuration.md)."""

from .config import ShopConfig, ShopConfigError, load_config
from .http import HttpOrderLookups, OrderLookupsService

__all__ = ["HttpOrderLookups", "OrderLookupsService", "ShopConfig", "ShopConfigError", "load_config"]
