package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunSmoke runs the comparison for a fraction of a second so that it
// keeps working; the figures come from `go run ./bench/publish`.
func TestRunSmoke(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		if os.Getenv("MAILSTS_REQUIRE_E2E") == "1" {
			t.Fatal("nginx is not installed (apt install nginx-light) and MAILSTS_REQUIRE_E2E=1")
		}
		t.Skip("nginx is not installed (apt install nginx-light): the policy host comparison needs it")
	}
	c := Config{Duration: 300 * time.Millisecond, Rounds: 1, Conns: 4, Nginx: "nginx", Modes: []string{"keepalive", "newconn"}}
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Modes {
		for _, s := range []string{"nginx", "mailsts"} {
			p := res.Median(s, m)
			if p.Requests == 0 || p.Errors != 0 || p.ServerCPU <= 0 {
				t.Errorf("%s %s: %+v", s, m, p)
			}
		}
	}
	var out bytes.Buffer
	Print(&out, c, res)
	if !strings.Contains(out.String(), "keepalive  mailsts/nginx:") || !strings.Contains(out.String(), "newconn    mailsts/nginx:") {
		t.Errorf("%s", out.String())
	}
}
