package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for c, ok := range map[Config]bool{
		{}: true, {Level: "debug", Format: "json"}: true, {Level: "WARN", Format: "text"}: true, {Level: "warning"}: true,
		{Level: "verbose"}: false, {Format: "xml"}: false, {Level: "info", Format: "JSON"}: false,
	} {
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	level := new(slog.LevelVar)
	level.Set(ParseLevel("warn"))
	log := New(&b, "json", level)
	log.Info("hidden")
	log.Warn("shown", "v", strings.Repeat("é", MaxValue))
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["msg"] != "shown" {
		t.Fatalf("JSON log %q: %v", b.String(), err)
	}
	if v := m["v"].(string); len(v) > MaxValue+32 || !strings.HasSuffix(v, "bytes)") {
		t.Errorf("long value not clipped: %d bytes", len(v))
	}
	b.Reset()
	level.Set(ParseLevel("debug"))
	New(&b, "text", level).Debug("now shown")
	if !strings.HasPrefix(b.String(), "time=") || !strings.Contains(b.String(), "now shown") {
		t.Errorf("text log %q", b.String())
	}
}
