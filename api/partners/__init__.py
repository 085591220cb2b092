"""Partners and crews in the loop: offers to partner companies, partner rescue providers,
crew acknowledgement."""
