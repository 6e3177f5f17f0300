"""Twilio: actions rendered as TwiML, request signatures, webhook fields."""
