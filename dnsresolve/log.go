package dnsresolve

import (
	"encoding/hex"
	"log/slog"
)

// LogValue implements slog.LogValuer.
func (a Answer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("authenticated", a.Authenticated),
		slog.String("canonical_name", a.CanonicalName),
	)
}

// LogValue implements slog.LogValuer.
func (m MX) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("pref", int(m.Pref)), slog.String("host", m.Host))
}

// LogValue implements slog.LogValuer, with the data in hex.
func (t TLSA) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("usage", int(t.Usage)),
		slog.Int("selector", int(t.Selector)),
		slog.Int("matching_type", int(t.MatchingType)),
		slog.String("data", hex.EncodeToString(t.Data)),
	)
}

// LogValue implements slog.LogValuer.
func (e *Error) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", e.Name),
		slog.String("type", e.Qtype),
		slog.Int("rcode", e.Rcode),
		slog.String("server", e.Server),
		slog.String("error", e.Error()),
	)
}
