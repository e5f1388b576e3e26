package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Resharding
//
// While a Redis Cluster moves a slot from one node to another (CLUSTER
// SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE: what `redis-cli
// --cluster reshard` does), the nodes answer commands on its keys with
// redirections: MOVED (the slot is now on another node), ASK (the key has
// already gone to the importing node; ask there, once, after ASKING),
// TRYAGAIN (a command on several keys of which some have moved) and
// CLUSTERDOWN (the cluster is not serving the slot).
//
// go-redis (v9.23) follows them itself, up to the client's MaxRedirects
// times (default 3, with pauses of 8 ms and more after a TRYAGAIN), for
// single commands, pipelines (scripts) and MULTI/EXEC pipelines; a
// redirection that still comes back after those is run again by
// movesHook, within the bounds below (not by raising MaxRedirects, which
// would also make every command wait longer on a node that is down). It
// does not follow them inside ClusterClient.Watch: only the WATCH
// command's own MOVED/ASK is followed; a read in the callback, the queued
// commands and the EXEC run on the node's plain client, so their MOVED,
// ASK or TRYAGAIN (and the EXECABORT that a redirected queued command
// causes) come back out of the callback, and Watch returns that error at
// once. watch runs such a transaction again, from the WATCH on: nothing of
// it took effect (a redirection aborts the whole transaction), so that is
// safe. A MOVED also reloads the client's slot map.
//
// An ASK is not followed inside a transaction: WATCH, every read and the
// MULTI would each need an ASKING before them on the importing node, and
// the slot's keys are split between two nodes until the move ends, so no
// node can check the transaction's reads. watch waits instead, briefly and
// with growing pauses, until the slot has moved (its owner then answers
// MOVED, which is followed) and runs the transaction there. A slot's move
// takes milliseconds (its keys are moved in batches), far less than
// movingBudget.

// Bounds of the runs of a command, pipeline or transaction whose slot is
// moving.
const (
	// movingAttempts bounds the runs of one command, pipeline or
	// transaction redirected by a resharding.
	movingAttempts = 200
	// movingBudget bounds the time spent waiting for a slot to move, over
	// all the runs of one command, pipeline or transaction.
	movingBudget = 10 * time.Second
	// movingPauseMax is the longest pause between two runs.
	movingPauseMax = 50 * time.Millisecond
)

// moves counts the runs of one transaction redirected by a resharding.
type moves struct {
	runs  int
	start time.Time
}

// slotMoving reports whether err (or an error it wraps) is a cluster
// redirection, or a transaction aborted because one of its commands was
// redirected: the transaction did not take effect and can run again once
// the slot has moved.
func slotMoving(err error) bool {
	if err == nil {
		return false
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	for _, prefix := range []string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN", "EXECABORT"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// wait is called after a run failed with err, a redirection: it reloads
// the slot map on MOVED and returns at once, or pauses (longer each time)
// before the next run, or returns an error when the transaction has been
// redirected too often or for too long, or ctx ends.
func (m *moves) wait(ctx context.Context, client redis.UniversalClient, err error) error {
	if m.runs == 0 {
		m.start = time.Now()
	}
	m.runs++
	if m.runs >= movingAttempts || time.Since(m.start) > movingBudget {
		return fmt.Errorf("redisstore: the cluster kept redirecting the transaction (%d runs in %v): %w",
			m.runs, time.Since(m.start).Round(time.Millisecond), err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "MOVED ") {
		if cc, ok := client.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
		if m.runs == 1 {
			return nil // the slot has moved: run on its new node at once
		}
	}
	pause := min(time.Duration(m.runs)*time.Millisecond, movingPauseMax)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
		return nil
	}
}

// movesHook runs a command or pipeline of the cluster client again when
// it comes back redirected after go-redis's own attempts (see moves). A
// redirected command did not run, and a MULTI/EXEC that a redirection
// aborted did not take effect; a plain pipeline may have run some of its
// commands, which is harmless for the store's pipelines: reads, and the
// idempotent scripts of runScripts. A redirected pipeline is thus run
// again whole.
type movesHook struct{}

// DialHook changes nothing.
func (movesHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook runs a redirected command again.
func (movesHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		var mv moves
		for {
			err := next(ctx, cmd)
			if !slotMoving(err) || mv.wait(ctx, nil, err) != nil {
				return err
			}
			cmd.SetErr(nil)
		}
	}
}

// ProcessPipelineHook runs a pipeline again when one of its commands was
// redirected.
func (movesHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var mv moves
		for {
			err := next(ctx, cmds)
			moving := firstMoving(err, cmds)
			if !slotMoving(moving) || mv.wait(ctx, nil, moving) != nil {
				return err
			}
			for _, c := range cmds {
				c.SetErr(nil)
			}
		}
	}
}

// firstMoving returns err if it is a redirection, else the first
// redirection among cmds' errors, else err.
func firstMoving(err error, cmds []redis.Cmder) error {
	if slotMoving(err) {
		return err
	}
	for _, c := range cmds {
		if slotMoving(c.Err()) {
			return c.Err()
		}
	}
	return err
}
