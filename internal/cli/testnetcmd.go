package cli

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailsts/mailsts/internal/testnet"
)

var testnetCommand = command{
	name:    "testnet",
	summary: "run the fake Internet on loopback (DNS, policy hosts, MX hosts, mail-client endpoints) for demos and tests",
	run:     runTestnet,
}

const testnetHelp = `
Starts mailsts's fake Internet on loopback: an authoritative DNS server, HTTPS
policy hosts (certificates from a throwaway test CA), SMTP MX hosts and mail
client endpoints (RFC 8314 submission, IMAP and POP3), as described by a
scenario (the embedded default covers every behaviour a sender or checker
must get right: good enforce/testing/none policies, redirects, 404, text/html,
huge and dripping bodies, bad certificates, DNS failures, MX hosts without
STARTTLS, DANE, good and broken mail-client endpoints). It prints the flags
other commands need to use it (check also gets the client ports as
--client-ports), then runs until interrupted. Only .example names are served.

Examples:
  mailsts testnet                       # default scenario, free ports
  mailsts testnet --scenario my.yaml --dns-port 5353
  mailsts testnet --print-scenario > default.yaml
  mailsts testnet --generate 100000 --seed 1   # d000000.gen.example … for benchmarks

  # in another terminal, with the printed flags:
  mailsts resolve --dns 127.0.0.1:PORT --ca-file /tmp/.../ca.pem --https-port PORT enforce.example
  mailsts check --dns 127.0.0.1:PORT --ca-file /tmp/.../ca.pem --https-port PORT --smtp-port PORT enforce.example
  mailsts check <check flags> --clients mail.clients.example clients.example   # mail clients, good
  mailsts check <check flags> --clients mail.badclients.example badclients.example

Exit codes: 0 after an interrupt, 2 when the network could not start, 64 usage.
`

func runTestnet(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("testnet", "mailsts testnet [--scenario FILE | --generate N [--seed S]] [--ip ADDR] [--dns-port N] [--https-port N] [--smtp-port N]", testnetHelp, env.Stderr)
	scenario := fs.String("scenario", "", "scenario YAML `file` (default: the embedded default scenario)")
	ip := fs.String("ip", "127.0.0.1", "address for DNS and the policy hosts")
	dnsPort := fs.Int("dns-port", 0, "DNS `port` (UDP and TCP; 0 picks a free one)")
	httpsPort := fs.Int("https-port", 0, "HTTPS `port` of the policy hosts (0 picks a free one)")
	smtpPort := fs.Int("smtp-port", 0, "SMTP `port` of the MX hosts (0 picks a free one)")
	generate := fs.Int("generate", 0, "serve `N` generated domains d000000.gen.example … (testnet.Generate) instead of a scenario file")
	seed := fs.Int64("seed", 1, "seed of --generate (the same N and seed give the same domains)")
	printScenario := fs.Bool("print-scenario", false, "print the embedded default scenario and exit")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(env.Stderr, "testnet", "no arguments expected")
	}
	for _, p := range []int{*dnsPort, *httpsPort, *smtpPort} {
		if p < 0 || p > 65535 {
			return usageError(env.Stderr, "testnet", "ports must be between 0 and 65535")
		}
	}
	if *printScenario {
		env.Stdout.Write(testnet.DefaultScenarioYAML())
		return ExitOK
	}
	if *generate < 0 || *generate > 1_000_000 {
		return usageError(env.Stderr, "testnet", "--generate must be between 1 and 1000000")
	}
	if *generate > 0 && *scenario != "" {
		return usageError(env.Stderr, "testnet", "give --scenario or --generate, not both")
	}
	sc := testnet.DefaultScenario()
	switch {
	case *generate > 0:
		sc = testnet.Generate(*generate, *seed)
	case *scenario != "":
		var err error
		if sc, err = testnet.LoadScenarioFile(*scenario); err != nil {
			return usageError(env.Stderr, "testnet", "%v", err)
		}
	}
	addr, err := netip.ParseAddr(*ip)
	if err != nil {
		return usageError(env.Stderr, "testnet", "--ip: %v", err)
	}
	n, err := testnet.Start(ctx, sc, testnet.Options{IP: addr, DNSPort: *dnsPort, HTTPSPort: *httpsPort, SMTPPort: *smtpPort})
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts testnet: %v\n", err)
		return ExitError
	}
	defer n.Close()
	// Name the domains unless there are too many to read.
	const maxListed = 100
	names := make([]string, 0, min(len(sc.Domains), maxListed+1))
	for i, d := range sc.Domains {
		if i == maxListed {
			names = append(names, "…")
			break
		}
		names = append(names, d.Name)
	}
	fmt.Fprintf(env.Stdout, "testnet running: %s (%s)\n", plural(len(sc.Domains), "domain", "domains"), strings.Join(names, " "))
	fmt.Fprintf(env.Stdout, "DNS %s  HTTPS port %d  SMTP port %d  MX addresses %s\n", n.DNSAddr(), n.HTTPSPort(), n.SMTPPort(), n.MXPrefix())
	fmt.Fprintf(env.Stdout, "flags: --dns %s --ca-file %s --https-port %s\n", n.DNSAddr(), n.CAFile(), strconv.Itoa(n.HTTPSPort()))
	var ports []string
	for _, s := range testnet.ClientServices() {
		ports = append(ports, string(s)+"="+strconv.Itoa(n.ClientPort(s)))
	}
	fmt.Fprintf(env.Stdout, "check flags: --dns %s --ca-file %s --https-port %d --smtp-port %d --client-ports %s\n", n.DNSAddr(), n.CAFile(), n.HTTPSPort(), n.SMTPPort(), strings.Join(ports, ","))
	<-ctx.Done()
	return ExitOK
}
