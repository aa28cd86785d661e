"""Notifications: policies, duty rosters, delivery log and the Faust notifier."""
