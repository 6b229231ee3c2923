package cli

import (
	"bytes"
	"context"
	"testing"

	"github.com/mailsts/mailsts/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	want := buildinfo.Get().String()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb}); code != ExitOK {
			t.Errorf("%v: exit %d, stderr %s", args, code, errb.String())
		}
		if out.String() != want {
			t.Errorf("%v printed %q, want %q", args, out.String(), want)
		}
	}
	var errb bytes.Buffer
	if code := Main(context.Background(), []string{"version", "extra"}, Env{Stderr: &errb}); code != ExitUsage {
		t.Errorf("version extra: exit %d, want %d", code, ExitUsage)
	}
}
