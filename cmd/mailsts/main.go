// Command mailsts makes email transport security real: MTA-STS (RFC 8461)
// and SMTP TLS Reporting (RFC 8460), end to end. See `mailsts help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mailsts/mailsts/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
