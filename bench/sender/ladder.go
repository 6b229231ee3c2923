package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt/libtlsrpttest"
)

// offer sends datagrams to path at rate per second for d, as libtlsrpt
// does: sendto on an unconnected socket with MSG_DONTWAIT, so that a
// datagram that finds the reader's queue full is dropped (EAGAIN), never
// waited for. It returns how many it tried and how many the kernel
// refused.
func offer(path string, dgrams [][]byte, rate int, d time.Duration) (tried, refused int64, err error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrUnix{Name: path}
	total := int64(float64(rate) * d.Seconds())
	// At most 10 ms of datagrams at once: when this sender was not
	// scheduled for a while (the CPUs are shared with the receivers), it
	// moves its schedule on rather than flood the queue with the backlog,
	// which would measure its own stall. The rate it achieved is
	// reported.
	burst := max(int64(rate)/100, 16)
	start := time.Now()
	for tried < total {
		due := min(total, int64(time.Since(start).Seconds()*float64(rate))+1)
		if behind := due - tried; behind > burst {
			start = start.Add(time.Duration(float64(behind-burst) / float64(rate) * float64(time.Second)))
			due = tried + burst
		}
		for ; tried < due; tried++ {
			err := syscall.Sendto(fd, dgrams[tried%int64(len(dgrams))], syscall.MSG_DONTWAIT, to)
			switch {
			case err == nil:
			case errors.Is(err, syscall.EAGAIN):
				refused++
			default:
				return tried, refused, err
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return tried, refused, nil
}

type ladderStep struct {
	rate             int
	tried, refused   int64
	stored           int64
	achieved         float64 // datagrams/s offered in fact
	cpuPerDatagram   float64 // µs
	cpuShareOfOneCPU float64
}

func (s ladderStep) lost() int64 { return s.tried - s.stored }

// runLadder offers each receiver the rates in turn, a fresh daemon per
// rate, until it loses datagrams; rounds interleave the receivers.
func runLadder(c config, rates []int, step time.Duration, out io.Writer) error {
	dir, err := os.MkdirTemp("", "bsend")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, p, err := prepare(c, dir)
	if err != nil {
		return err
	}
	dgrams := libtlsrpttest.Mix(max(c.n, 1000), c.domains)
	type rx struct {
		name  string
		start func(tag string) (*daemon, error)
		best  []float64
	}
	rxs := []*rx{{name: "mailsts tlsrpt collect", start: func(tag string) (*daemon, error) { return startMailsts(bin, dir, tag, c.qlen) }}}
	if p != nil {
		rxs = append(rxs, &rx{name: "tlsrpt-collectd " + p.version, start: func(tag string) (*daemon, error) { return p.start(dir, tag, c.qlen) }})
	}
	fmt.Fprintf(out, "offered rates %v datagrams/s, %s each, non-blocking sendto (libtlsrpt's default), net.unix.max_dgram_qlen %s, %d rounds\n",
		rates, step, qlenString(c.qlen), c.rounds)
	fmt.Fprintf(out, "%-5s %-30s %9s %9s %9s %9s %9s %13s %10s\n", "round", "receiver", "offered/s", "sent", "refused", "stored", "lost", "CPU µs/dgram", "CPU share")
	for round := 1; round <= c.rounds; round++ {
		order := rxs
		if round%2 == 0 && len(rxs) > 1 {
			order = []*rx{rxs[1], rxs[0]}
		}
		for _, r := range order {
			best := 0.0
			for i, rate := range rates {
				d, err := r.start(fmt.Sprintf("l%d-%d-%d", round, len(r.best), i))
				if err != nil {
					return err
				}
				t0 := time.Now()
				tried, refused, err := offer(d.sock, dgrams, rate, step)
				if err != nil {
					d.kill()
					return fmt.Errorf("%s: send: %w", r.name, err)
				}
				sendTime := time.Since(t0)
				// What was sent is read and committed within a few
				// seconds; the count then stops moving.
				waitStored(d, tried-refused, 3*time.Second, c.timeout)
				cpu, stored, err := d.stop()
				if err != nil {
					return err
				}
				s := ladderStep{rate: rate, tried: tried, refused: refused, stored: stored,
					achieved: float64(tried) / sendTime.Seconds()}
				if stored > 0 {
					s.cpuPerDatagram = float64(cpu.Microseconds()) / float64(stored)
				}
				s.cpuShareOfOneCPU = cpu.Seconds() / sendTime.Seconds()
				fmt.Fprintf(out, "%-5d %-30s %9.0f %9d %9d %9d %9d %13.1f %9.0f%%\n", round, r.name, s.achieved, tried, refused, stored, s.lost(),
					s.cpuPerDatagram, 100*s.cpuShareOfOneCPU)
				if s.lost() != 0 {
					break
				}
				best = s.achieved
			}
			r.best = append(r.best, best)
		}
	}
	fmt.Fprintf(out, "\nhighest rate achieved with nothing lost (median, min–max over %d rounds; 0: lost at the lowest rate; at the top rate: never lost):\n", c.rounds)
	for _, r := range rxs {
		fmt.Fprintf(out, "  %-30s %s datagrams/s\n", r.name, spread(r.best, "%.0f"))
	}
	if len(rxs) > 1 {
		var ratios []float64
		for i := range rxs[0].best {
			if rxs[1].best[i] > 0 {
				ratios = append(ratios, rxs[0].best[i]/rxs[1].best[i])
			}
		}
		fmt.Fprintf(out, "  mailsts ÷ tlsrpt-collectd, same round: %s×\n", spread(ratios, "%.1f"))
	}
	return nil
}
