package sdk

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Lifecycle timings. parentPollInterval bounds how long a skill outlives
// its host; handlerGrace is how long cancelled handlers get to return;
// flushGrace lets the final events of cancelled requests reach the host
// before the connection closes.
var (
	parentPollInterval = 500 * time.Millisecond
	handlerGrace       = 5 * time.Second
	flushGrace         = time.Second
)

func stopTimeout() <-chan time.Time { return time.After(handlerGrace) }

// Serve serves the skill and exits the process when it stops: it is
// os.Exit(s.Main()).
func Serve(s *Skill) { os.Exit(s.Main()) }

// Main serves the skill to the host that started it and returns the
// process's exit code once it stops: when the host stops it, on SIGTERM
// (requests in flight end with ERROR cancelled) or when the host dies.
// Started by hand rather than by a host, it explains on stderr what the
// program is and returns 1.
func (s *Skill) Main() int {
	if os.Getenv(skillrpc.Handshake.MagicCookieKey) != skillrpc.Handshake.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "%s is the AgentMesh skill %s %s.\n"+
			"It is a plugin that an AgentMesh host starts; it does not run on its own.\n"+
			"Install it into a host to use it.\n",
			filepath.Base(os.Args[0]), s.manifest.Name, s.manifest.Version)
		return 1
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		panic("sdk: Main called twice")
	}
	s.serving = true
	s.mu.Unlock()

	for _, c := range s.manifest.Capabilities {
		if _, ok := s.handlers[c.Intent]; !ok {
			s.log.Warn("capability has no handler; its requests fail with capability_not_supported", "intent", c.Intent)
		}
	}
	// Whatever the skill logs through hclog's default or the standard log
	// package reaches the host too; nothing may go to stdout, which
	// carries the handshake.
	hclog.SetDefault(s.log)
	log.SetFlags(0)
	log.SetOutput(s.log.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}))

	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watch(stop)
	}()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  skillrpc.Handshake,
		VersionedPlugins: skillrpc.ServePluginSet(s.plugin()),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			srv := grpc.NewServer(opts...)
			s.mu.Lock()
			s.server = srv
			s.mu.Unlock()
			return srv
		},
		Logger: s.log.Named("plugin"),
	})
	close(stop)
	<-watched
	return 0
}

// watch stops the skill on SIGTERM or when its parent, the host, dies
// (the skill is then re-parented, so its parent pid changes). It returns
// when stop is closed.
func (s *Skill) watch(stop <-chan struct{}) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	parent := os.Getppid()
	tick := time.NewTicker(parentPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-term:
			s.log.Info("SIGTERM: stopping")
			s.stop(true)
			return
		case <-tick.C:
			if os.Getppid() != parent {
				s.log.Info("host exited: stopping", "host_pid", parent)
				s.stop(false)
				return
			}
		}
	}
}

// stop cancels the requests in flight and stops serving, which makes Main
// return. When the host may still be listening (graceful), the final
// events of cancelled requests get flushGrace to reach it.
func (s *Skill) stop(graceful bool) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // cancel at once: a stopping skill finishes nothing new
	n := s.drain(ctx)
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	if srv == nil {
		// Not serving yet: plugin.Serve cannot be interrupted, so leave.
		os.Exit(0)
	}
	if graceful && n > 0 {
		done := make(chan struct{})
		go func() {
			// GracefulStop flushes what is queued and then waits for
			// go-plugin's own long-lived streams, which never end by
			// themselves; Stop below cuts that wait short.
			srv.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(flushGrace):
		}
	}
	srv.Stop()
}
