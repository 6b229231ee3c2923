//go:build tools

// Package tools pins modules that mailsts packages use or will use, so that
// `go mod tidy` keeps them while their users are being written. See
// DEVELOPING.md ("Dependencies") for why each one is here.
package tools

import (
	_ "github.com/emersion/go-imap/v2"
	_ "github.com/emersion/go-message"
	_ "github.com/emersion/go-msgauth/dkim"
	_ "github.com/emersion/go-smtp"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/miekg/dns"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/schollz/progressbar/v3"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/net/idna"
	_ "golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite"
)
