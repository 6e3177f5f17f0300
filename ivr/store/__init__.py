"""Where calls are kept: one subpackage per backend."""
