"""What each telephony provider speaks, one subpackage per provider."""
