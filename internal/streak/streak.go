// Package streak reports the failures of a background task (a flush, a
// scan, a check no client waits on) the way the gateway reports every
// failure nobody else sees: each one counted (Failures, exported as a
// metric), logged at Warn once per streak of failures, and once more, at
// Info with the streak's length, when the task works again. Repeat runs
// such a task every interval.
package streak

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Streak follows one task's failures. The zero value is ready to use; a
// nil *Streak counts nothing and logs nothing. Safe for concurrent use.
type Streak struct {
	failures atomic.Uint64

	mu      sync.Mutex
	current uint64 // failures since the last success
}

// Record notes the outcome of one run of the task: err nil is a success.
// On the first failure of a streak it logs what failed (msg, with the
// error) at Warn; on the first success after a streak it logs msg + "
// works again" at Info with the number of failures. Other runs log
// nothing. A nil logger logs nothing.
func (s *Streak) Record(err error, logger *zap.Logger, msg string) {
	if s == nil {
		return
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.failures.Add(1)
		s.current++
		if s.current == 1 {
			logger.Warn(msg+" failed; trying again (not logged again until it works)", zap.Error(err))
		}
	case s.current > 0:
		logger.Info(msg+" works again", zap.Uint64("failures", s.current))
		s.current = 0
	}
}

// Failures is how many runs failed in all (0 for a nil Streak).
func (s *Streak) Failures() uint64 {
	if s == nil {
		return 0
	}
	return s.failures.Load()
}

// Repeat runs task at once and then again every interval until ctx is
// done, recording each outcome (Record, with msg); a value on wake starts
// the next run at once. settings gives the interval and the logger before
// each wait, so a reconfigured task uses them from its next run. A run
// that ctx cut short is not recorded.
func (s *Streak) Repeat(ctx context.Context, wake <-chan struct{}, settings func() (time.Duration, *zap.Logger), msg string, task func(context.Context) error) {
	for {
		err := task(ctx)
		interval, logger := settings()
		if ctx.Err() != nil {
			return
		}
		s.Record(err, logger, msg)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}
