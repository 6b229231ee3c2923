package certs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// certmagic's zap logs reach the slog logger with their fields and level,
// and levels the logger does not want are dropped.
func TestZapToSlog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := zapLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Named("obtain").With(zap.String("identifier", "mta-sts.a.example")).Info("certificate obtained", zap.Int("attempt", 2))
	l.Debug("noise")
	l.Error("failed", zap.Error(errTest))
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="certificate obtained"`, "logger=certmagic.obtain", "identifier=mta-sts.a.example", "attempt=2",
		`level=ERROR msg=failed`, `error="test error"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "noise") {
		t.Errorf("debug line logged at level info:\n%s", out)
	}
}

var errTest = testError{}

type testError struct{}

func (testError) Error() string { return "test error" }
