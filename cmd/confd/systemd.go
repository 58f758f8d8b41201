package main

import (
	"context"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// notifier tells systemd how the daemon is doing through the sd_notify
// protocol (Type=notify units). Without NOTIFY_SOCKET in the environment
// every message is dropped.
type notifier struct {
	log *logrus.Logger
}

// notify sends state, for instance sddaemon.SdNotifyReady.
func (n notifier) notify(state string) {
	sent, err := sddaemon.SdNotify(false, state)
	switch {
	case err != nil:
		n.log.WithError(err).WithField("state", state).Warn("notify systemd")
	case sent:
		n.log.WithField("state", state).Debug("notified systemd")
	}
}

// watchdog pings systemd's watchdog at half its period (WatchdogSec, seen
// as WATCHDOG_USEC) from a goroutine of its own until ctx ends, and returns
// a function that waits for that goroutine. Without a watchdog it starts
// nothing.
func (n notifier) watchdog(ctx context.Context) (wait func()) {
	period, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.WithError(err).Warn("systemd watchdog disabled")
	}
	if err != nil || period <= 0 {
		return func() {}
	}
	n.log.WithField("period", period).Debug("pinging systemd watchdog")
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period / 2)
		defer t.Stop()
		failing := false
		for {
			// Ping at once: the watchdog runs from the start of the unit.
			_, err := sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			switch {
			case err != nil && !failing:
				n.log.WithError(err).Warn("ping systemd watchdog")
			case err != nil:
				n.log.WithError(err).Debug("ping systemd watchdog")
			}
			failing = err != nil
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return wg.Wait
}
