"""ragloop streams."""
