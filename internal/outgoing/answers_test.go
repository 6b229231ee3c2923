package outgoing

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestAnswers(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{})
		ctx := ctxT(t)
		newer := Answer{Domain: "Example.com", Time: day1.Add(time.Hour), Answer: "ok_secure", Policy: stsPolicy()}
		older := Answer{Domain: "example.com", Time: day1, Answer: "notfound", Policy: Policy{Type: "no-policy-found"}}
		if err := st.PutAnswers(ctx, []Answer{newer}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutAnswers(ctx, []Answer{older}); err != nil {
			t.Fatal(err)
		}
		got, found, err := st.AnswerFor(ctx, "EXAMPLE.COM")
		newer.Domain = "example.com"
		if err != nil || !found || !reflect.DeepEqual(got, newer) {
			t.Errorf("AnswerFor = %+v %v %v, want the newer %+v", got, found, err, newer)
		}
		if _, found, _ := st.AnswerFor(ctx, "other.example"); found {
			t.Error("answer for an unknown domain")
		}
		if _, err := st.Expire(ctx, day1.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := st.AnswerFor(ctx, "example.com"); found {
			t.Error("expired answer kept")
		}
	})
}

// The AnswerLog keeps the newest answer per domain, writes on Flush and
// Close, and is bounded (drops counted).
func TestAnswerLog(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	l := newAnswerLog(st, time.Hour, 2, nil, false)
	l.Note(Answer{Domain: "a.example", Time: day1.Add(time.Minute), Answer: "ok_secure", Policy: stsPolicy()})
	l.Note(Answer{Domain: "a.example", Time: day1, Answer: "notfound", Policy: Policy{Type: "no-policy-found"}})
	l.Note(Answer{Domain: "b.example", Time: day1, Answer: "notfound", Policy: Policy{Type: "no-policy-found"}})
	l.Note(Answer{Domain: "c.example", Time: day1, Answer: "notfound", Policy: Policy{Type: "no-policy-found"}})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, d := l.Stats(); w != 2 || d != 1 {
		t.Errorf("written %d dropped %d, want 2 and 1", w, d)
	}
	if a, _, _ := st.AnswerFor(ctxT(t), "a.example"); a.Answer != "ok_secure" {
		t.Errorf("a.example = %+v, want the newest answer", a)
	}
	if _, found, _ := st.AnswerFor(ctxT(t), "c.example"); found {
		t.Error("the dropped answer was written")
	}
}

// A new domain's answer, and a changed one, are written at once, not at
// the next periodic flush (an hour away here): the log follower joins the
// MTA's session with it milliseconds later. A repeated answer waits.
func TestAnswerLogWritesNewAnswersAtOnce(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	l := NewAnswerLog(st, time.Hour, 0, nil)
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	answerIs := func(want string) func() bool {
		return func() bool {
			a, found, err := st.AnswerFor(context.Background(), "a.example")
			return err == nil && found && a.Answer == want
		}
	}
	l.Note(Answer{Domain: "a.example", Time: day1, Answer: "notfound", Policy: Policy{Type: "no-policy-found"}})
	waitFor(t, answerIs("notfound"))
	l.Note(Answer{Domain: "a.example", Time: day1.Add(time.Minute), Answer: "ok_secure", Policy: stsPolicy()})
	waitFor(t, answerIs("ok_secure"))
	w, _ := l.Stats()
	l.Note(Answer{Domain: "a.example", Time: day1.Add(2 * time.Minute), Answer: "ok_secure", Policy: stsPolicy()})
	time.Sleep(50 * time.Millisecond)
	if w2, _ := l.Stats(); w2 != w {
		t.Errorf("a repeated answer was written at once (%d writes, then %d)", w, w2)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := st.AnswerFor(context.Background(), "a.example"); !a.Time.Equal(day1.Add(2 * time.Minute)) {
		t.Errorf("after Close the answer is of %v, want the refreshed time", a.Time)
	}
}

func TestExpireDaily(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	if err := st.Add(ctxT(t), ok("example.com", day1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ExpireDaily(ctx, st, 30, func() time.Time { return day1.AddDate(0, 0, 31) }, nil); close(done) }()
	waitFor(t, func() bool {
		p, _ := st.Pending(context.Background(), day1.AddDate(0, 0, 40), 0)
		return len(p) == 0
	})
	cancel()
	<-done
}
