"""Event-driven inference on event-camera streams: windows, steppers (one protocol), sources, results."""
