"""Trading analytics from the event stream (issue 14): views kept from order events."""
