package dashboard

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// chromiumPath finds Debian's chromium (or another Chrome); the test
// skips without one, and fails instead when MAILSTS_REQUIRE_E2E=1.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH (apt-get install chromium): the browser test of the dashboard cannot run"
	if os.Getenv("MAILSTS_REQUIRE_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is where the browser test saves its screenshots:
// testdata/out (ignored by git).
func screenshotDir(t *testing.T) string {
	dir := filepath.Join("testdata", "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives headless Chromium through sign-in, the overview, a
// domain drill-down to failure details and a report page on seeded data,
// checks that the numbers shown are the store's Summary, that the pages
// fit a phone's width and start with a skip link for the keyboard, and
// fails on any console error or JavaScript exception (the pages carry no
// script; a CSP violation is reported as an error too).
func TestBrowser(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	fx := newFixture(t, withOutbox(newOutbox(t)), withPolicyd(fakePolicyd(t).URL+"/metrics"))
	dir := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	// Every console message of type error, and every exception, is a
	// failure (the pages carry no script; a CSP violation is an error).
	var mu sync.Mutex
	var problems []string
	cctx, stopConsole := context.WithCancel(ctx)
	msgs := chromedp.Console(cctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Type == "assert" {
				mu.Lock()
				problems = append(problems, m.String()+" at "+m.URL)
				mu.Unlock()
			}
		}
	}()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	base := fx.ts.URL
	from, to := testNow.AddDate(0, 0, -29), testNow
	n, succ, fail := reportstest.OrgTotals(t, fx.st, reports.Filter{Since: from, Until: to})

	// Sign in; the overview's totals.
	do("sign-in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), alicePassword),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("totals")),
		shot("overview"))
	reportsShown, succShown := text(`#totals dd[data-k="reports"]`), text(`#totals dd[data-k="successful"]`)
	failShown, rateShown := text(`#totals dd[data-k="failed"]`), text(`#totals dd[data-k="rate"]`)
	if reportsShown != num(n) || succShown != num(succ) || failShown != num(fail) || rateShown != pct(succ, succ+fail) {
		t.Errorf("overview shows %s reports, %s/%s sessions, rate %s; store: %d, %d/%d", reportsShown, succShown, failShown, rateShown, n, succ, fail)
	}
	// The first Tab reaches the skip link.
	do("tab", chromedp.KeyEvent("\t"))
	if focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.className`)); err != nil || focused != "skip" {
		t.Errorf("first Tab focuses %q (%v), want the skip link", focused, err)
	}

	// Search a domain, open it: its totals.
	dn, dsucc, dfail := reportstest.OrgTotals(t, fx.st, reports.Filter{Since: from, Until: to, PolicyDomain: "d3.example"})
	do("domain page",
		chromedp.SendKeys(chromedp.ID("q"), "d3.example"),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`li[data-domain="d3.example"] h3 a`)),
		chromedp.Click(chromedp.CSS(`li[data-domain="d3.example"] h3 a`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.bars`)),
		shot("domain"))
	dReports, dFailed, dSucc := text(`#totals dd[data-k="reports"]`), text(`#totals dd[data-k="failed"]`), text(`#totals dd[data-k="successful"]`)
	if dReports != num(dn) || dFailed != num(dfail) || dSucc != num(dsucc) {
		t.Errorf("d3.example shows %s reports, %s successful, %s failed; store %d, %d, %d", dReports, dSucc, dFailed, dn, dsucc, dfail)
	}

	// Drill down: the first sending IP's failures, then a report.
	groups, err := fx.st.FailureGroups(context.Background(), reports.Filter{Since: from, Until: to, PolicyDomain: "d3.example"}, reports.FailureKeySendingIP)
	if err != nil || len(groups) == 0 {
		t.Fatalf("failure groups: %v", err)
	}
	do("failures",
		chromedp.Click(chromedp.CSS(`#ip-h + div table tbody tr:first-child a`)),
		chromedp.WaitVisible(chromedp.ID("failures")),
		shot("failures"))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#failures tbody tr').length`))
	if err != nil || int64(rows) != groups[0].Details {
		t.Errorf("failures of %s: %d rows (%v), want %d", groups[0].Key, rows, err, groups[0].Details)
	}
	do("report page",
		chromedp.Click(chromedp.CSS(`#failures tbody tr:first-child td:nth-child(3) a`)),
		chromedp.WaitVisible(chromedp.CSS(`article.report`)),
		shot("report"))
	if h1 := text("h1"); !strings.HasPrefix(h1, "Report ") {
		t.Errorf("report page heading %q", h1)
	}

	// The outgoing reports: every delivery of the outbox, the
	// suppressed destination.
	do("outbox",
		chromedp.Click(chromedp.CSS(`header a[href="/outbox"]`)),
		chromedp.WaitVisible(chromedp.ID("outbox")),
		chromedp.WaitVisible(chromedp.ID("destinations")),
		shot("outbox"))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#outbox tbody tr').length`)); err != nil || n != 5 {
		t.Errorf("the outbox page lists %d rows (%v), want 5", n, err)
	}
	if s := text(`#outbox tr[data-state="suppressed"] td:nth-child(2)`); s != "sup.example" {
		t.Errorf("the suppressed row is %q", s)
	}

	// The policy daemon's health, from its metrics.
	do("policyd",
		chromedp.Click(chromedp.CSS(`header a[href="/policyd"]`)),
		chromedp.WaitVisible(chromedp.ID("policyd")),
		chromedp.WaitVisible(chromedp.ID("policyd-degraded")),
		shot("policyd"))
	if s := text(`#policyd dd[data-k="entries"]`); s != "7" {
		t.Errorf("policyd page: %s cached policies, want 7", s)
	}
	if s := text(`#lookups td[data-k="hit"]`); s != "3" {
		t.Errorf("policyd page: %s cache hits, want 3", s)
	}

	// On a phone: nothing wider than the screen.
	do("phone",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/domain/d3.example"),
		chromedp.WaitVisible(chromedp.CSS(`svg.bars`)),
		shot("domain-phone"))
	if overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); err != nil || overflow {
		t.Errorf("the domain page is wider than a phone's screen (%v)", err)
	}
	stopConsole()
	<-consoleDone
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
	t.Logf("screenshots in %s", dir)
}
