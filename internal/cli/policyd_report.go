package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/policyd"
)

// policydReport feeds policyd's ReportObserver into the TLS reporting
// results store: discovery failures become failed sessions (Recorder,
// never waiting), answers the per-domain record for the log join
// (AnswerLog). policyd itself knows nothing of the store.
type policydReport struct {
	st      *outgoing.Store
	rec     *outgoing.Recorder
	answers *outgoing.AnswerLog
	log     *slog.Logger
}

func openPolicydReport(ctx context.Context, spec, stateDir string, log *slog.Logger) (*policydReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if spec == "default" {
		spec = ""
	}
	st, err := outgoing.Open(ctx, spec, stateDir, outgoing.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	return &policydReport{
		st:      st,
		rec:     outgoing.NewRecorder(st, outgoing.RecorderOptions{MaxWait: -1, Logger: log}),
		answers: outgoing.NewAnswerLog(st, 0, 0, log),
		log:     log,
	}, nil
}

// PolicyAnswered implements policyd.ReportObserver.
func (p *policydReport) PolicyAnswered(a policyd.PolicyAnswer) {
	pol := outgoing.Policy{Type: a.PolicyType, Strings: a.PolicyStrings, MXHosts: a.MXPatterns}
	p.answers.Note(outgoing.Answer{Domain: a.Domain, Time: a.Time, Answer: a.Answer, Policy: pol})
	if a.Failure == "" {
		return
	}
	// Errors are counted by the Recorder (Stats) and logged there.
	_ = p.rec.Record(context.Background(), outgoing.Result{Time: a.Time, PolicyDomain: a.Domain, Policy: pol,
		Failures: []outgoing.Failure{{ResultType: a.Failure, AdditionalInfo: a.Detail}}})
}

// Close writes what is buffered and closes the store.
func (p *policydReport) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.rec.Close(ctx); err != nil {
		p.log.Error("tlsrpt results not written", "err", err)
	}
	if err := p.answers.Close(ctx); err != nil {
		p.log.Error("policy answers not written", "err", err)
	}
	s := p.rec.Stats()
	p.log.Info("tlsrpt results of policyd", "written", s.Written, "dropped", s.Dropped, "invalid", s.Invalid, "lost", s.Lost)
	p.st.Close()
}
