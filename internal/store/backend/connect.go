package backend

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

// Bounds of the pause between attempts to reach a Redis store.
const (
	minRetry = 250 * time.Millisecond
	maxRetry = 5 * time.Second
)

// Connect opens the store at loc and attaches it to d (see
// store.Deferred.Attach: the subscriptions made on d are set up first).
//
// The embedded store is opened at once, and an error (the file is locked
// by another process, say) is returned. A Redis store is attached when its
// server answers: if it does not, Connect logs one error, returns nil and
// keeps trying in the background (wg counts that goroutine), pausing
// longer after each failure, until it succeeds, and then logs once that
// the store is back; or until ctx ends. Meanwhile d answers
// store.ErrUnavailable, which callers turn into 503.
func Connect(ctx context.Context, d *store.Deferred, loc Location, logger *zap.Logger, wg *sync.WaitGroup) error {
	st, err := loc.open(logger)
	if err != nil {
		return err
	}
	err = d.Attach(st)
	if err == nil {
		return nil
	}
	if !loc.IsRedis() {
		closeStore(st, loc, logger)
		return err
	}
	d.Unreachable()
	logger.Error("store unreachable; answering 503 for what needs it and retrying in the background",
		zap.String("store", loc.String()), zap.Error(err))
	wg.Add(1)
	go func() {
		defer wg.Done()
		retry(ctx, d, st, loc, err, logger)
	}()
	return nil
}

// retry attaches st to d, pausing between attempts, until it succeeds or
// ctx ends (then st is closed). last is the error of the first attempt,
// already logged: a different error is logged again (a Redis that answers
// but refuses, a wrong password say, is not a passing outage), the same
// one is only counted.
func retry(ctx context.Context, d *store.Deferred, st store.Store, loc Location, last error, logger *zap.Logger) {
	pause := minRetry
	attempts := 1
	for {
		select {
		case <-ctx.Done():
			closeStore(st, loc, logger)
			return
		case <-time.After(pause):
		}
		attempts++
		err := d.Attach(st)
		if err == nil {
			logger.Info("store reachable again; serving", zap.String("store", loc.String()), zap.Int("attempts", attempts))
			return
		}
		if err.Error() != last.Error() {
			logger.Error("store still unreachable, now for another reason; retrying",
				zap.String("store", loc.String()), zap.Int("attempts", attempts), zap.Error(err))
			last = err
		}
		pause = min(2*pause, maxRetry)
	}
}

// closeStore closes a store that was never attached, logging a failure.
func closeStore(st store.Store, loc Location, logger *zap.Logger) {
	if err := st.Close(); err != nil {
		logger.Warn("closing the store", zap.String("store", loc.String()), zap.Error(err))
	}
}
