package outbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestEndToEndIntoOwnReceiver delivers one report to both rua of a
// domain published in the fake Internet's DNS: by HTTPS into mailsts's own
// receiver, and by mail through a STARTTLS relay, the mail then ingested
// with DKIM verified against the key in the same DNS (RPT-MAIL-1..7,
// RPT-HTTP). Both stores end up holding the report; the mail one as
// authenticated by the submitter's domain.
func TestEndToEndIntoOwnReceiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := func() time.Time { return t0.Add(time.Hour) }

	// The HTTPS receiver (RFC 8460 §5.4) with its own report store.
	httpStore := sqlstoretest.OpenSQLite(t)
	recv := httptest.NewTLSServer(&httpapi.Receiver{Ingester: &ingest.Ingester{Store: httpStore, DKIM: ingest.DKIMOff, Now: now}})
	t.Cleanup(recv.Close)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sc := &testnet.Scenario{Domains: []testnet.Domain{
		{Name: "sender.example", Records: []string{
			`tlsrpt._domainkey.sender.example. 300 IN TXT "v=DKIM1; k=ed25519; s=tlsrpt; p=` + base64.StdEncoding.EncodeToString(pub) + `"`}},
		{Name: "policy.example", TLSRPTTXT: [][]string{{"v=TLSRPTv1; rua=mailto:tls-reports@receiver.example," + recv.URL + "/tlsrpt"}}},
		{Name: "relay.example", MX: []testnet.MXHost{{Name: "mx.relay.example"}}},
	}}
	n, err := testnet.Start(ctx, sc, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	res, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	relayIP, ok := n.MXAddr("mx.relay.example")
	if !ok {
		t.Fatal("no relay address")
	}

	s := openSQLite(t)
	o := &Outbox{Store: s, Resolver: res, Now: now, Config: Config{DisableSpread: true},
		HTTP: &HTTPSPoster{Client: recv.Client()},
		Mail: &Mailer{
			From:      "tlsrpt@sender.example",
			DKIM:      &DKIMSigner{Domain: "sender.example", Selector: "tlsrpt", Key: priv},
			Relay:     net.JoinHostPort(relayIP.String(), strconv.Itoa(n.SMTPPort())),
			StartTLS:  StartTLSRequired,
			TLSConfig: &tls.Config{RootCAs: n.RootCAs(), ServerName: "mx.relay.example"},
			HelloName: "sender.example",
		}}
	r := testReport(t, "policy.example")
	if err := o.Enqueue(ctx, r); err != nil {
		t.Fatal(err)
	}
	pass := runPass(t, o)
	if pass.Resolved != 1 || pass.Sent != 2 {
		t.Fatalf("pass %+v\n%s", pass, dump(entries(t, s)))
	}

	// HTTPS: stored by the receiver.
	got, err := httpStore.Show(ctx, r.ReportID)
	if err != nil || len(got) != 1 || got[0].Source != reports.SourceHTTP || len(got[0].Report.Policies) != 1 ||
		got[0].Report.Policies[0].Summary.TotalFailureSessionCount != 1 {
		t.Fatalf("HTTPS receiver holds %+v (%v)", got, err)
	}

	// Mail: through the relay over TLS, in the §5.3 form.
	msgs := n.Received("mx.relay.example")
	if len(msgs) != 1 {
		t.Fatalf("relay received %d messages", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.From != "tlsrpt@sender.example" || len(m.To) != 1 || m.To[0] != "tls-reports@receiver.example" {
		t.Fatalf("relay got from %q to %v, TLS %v", m.From, m.To, m.TLS)
	}
	pm, err := tlsrpt.ParseMessage(bytes.NewReader(m.Data), tlsrpt.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	head := string(m.Data[:bytes.Index(m.Data, []byte("\r\n\r\n"))])
	for _, h := range []string{"TLS-Required: No", "Auto-Submitted: auto-generated", "TLS-Report-Domain: policy.example",
		"TLS-Report-Submitter: sender.example", "Content-Type: multipart/report", "DKIM-Signature:"} {
		if !strings.Contains(strings.ToLower(head), strings.ToLower(h)) { // header names are case-insensitive
			t.Errorf("header %q missing in\n%s", h, head)
		}
	}
	if !IsReportMessageID(pm.MessageID) {
		t.Errorf("Message-ID %q not marked as a report's", pm.MessageID)
	}
	if len(pm.Attachments) != 1 || pm.Attachments[0].Filename != r.Filename || pm.Attachments[0].ContentType != tlsrpt.MediaTypeGzip {
		t.Fatalf("attachments %+v, want %s", pm.Attachments, r.Filename)
	}
	if pm.SubjectInfo == nil || pm.SubjectInfo.Domain != "policy.example" {
		t.Errorf("subject %q", pm.Subject)
	}

	// Ingested by mailsts's own mail path, DKIM verified through the DNS.
	mailStore := sqlstoretest.OpenSQLite(t)
	in := &ingest.Ingester{Store: mailStore, Resolver: res, Now: now}
	ir, err := in.Message(ctx, bytes.NewReader(m.Data), reports.SourceMail, "test")
	if err != nil || ir.Outcome != ingest.OutcomeStored {
		t.Fatalf("ingest: %+v %v", ir, err)
	}
	stored, err := mailStore.Show(ctx, r.ReportID)
	if err != nil || len(stored) != 1 || !stored[0].Authenticated || stored[0].DKIMDomain != "sender.example" {
		t.Fatalf("mail store holds %+v (%v)", stored, err)
	}
	// The signature covers what matters: a changed Subject fails it.
	forged := bytes.Replace(m.Data, []byte("Submitter: sender.example Report-ID"), []byte("Submitter: sender.exampla Report-ID"), 1)
	ir, err = (&ingest.Ingester{Store: sqlstoretest.OpenSQLite(t), Resolver: res, Now: now}).Message(ctx, bytes.NewReader(forged), reports.SourceMail, "test")
	if err != nil || ir.Outcome != ingest.OutcomeRejected {
		t.Fatalf("forged mail: %+v %v", ir, err)
	}
	// The outbox lists the mail recipient for the collectors.
	rcpts, err := s.ActiveMailRecipients(ctx, t0)
	if err != nil || len(rcpts) != 1 || rcpts[0] != "tls-reports@receiver.example" {
		t.Errorf("active recipients %v %v", rcpts, err)
	}
}

// TestRelaySTARTTLSModes: a relay whose certificate does not verify is
// refused with starttls required and used with opportunistic; a loopback
// relay without STARTTLS is fine by default and refused when TLS is
// required.
func TestRelaySTARTTLSModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: []testnet.Domain{
		{Name: "relay.example", MX: []testnet.MXHost{{Name: "mx.relay.example", Cert: testnet.CertSelfSigned}}},
	}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	ip, _ := n.MXAddr("mx.relay.example")
	selfSigned := net.JoinHostPort(ip.String(), strconv.Itoa(n.SMTPPort()))
	plain := newFakeRelay(t, 0, 0, 0) // on 127.0.0.1, no STARTTLS
	r := testReport(t, "policy.example")
	for _, tc := range []struct {
		relay, mode string
		ok          bool
		want        string
	}{
		{selfSigned, StartTLSRequired, false, "certificate"},
		{selfSigned, StartTLSOpportunistic, true, ""},
		{plain.Addr(), "", true, ""},
		{plain.Addr(), StartTLSRequired, false, "no STARTTLS"},
	} {
		m := &Mailer{Relay: tc.relay, StartTLS: tc.mode, HelloName: "sender.example",
			TLSConfig: &tls.Config{RootCAs: n.RootCAs(), ServerName: "mx.relay.example"}}
		err := m.Deliver(ctx, r, "tlsrpt@policy.example", t0)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("relay %s starttls %q: %v", tc.relay, tc.mode, err)
		}
	}
	if got := len(n.Received("mx.relay.example")); got != 1 {
		t.Errorf("self-signed relay received %d messages, want 1", got)
	}
	if got := len(plain.messages()); got != 1 {
		t.Errorf("plain relay received %d messages, want 1", got)
	}
}
