"""Tether's agent: connects a machine to the Tether server and runs Claude Code there."""
