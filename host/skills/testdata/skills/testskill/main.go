// Command testskill is a skill for the tests of package skills: it echoes,
// counts its calls into a file, sleeps until cancelled, crashes on demand
// and asks for the host's status without being granted it.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
)

//go:embed skill.json
var manifest []byte

type echoParams struct {
	Text     string `json:"text"`
	N        int    `json:"n"`
	Progress bool   `json:"progress"`
}

type echoResult struct {
	Text string `json:"text"`
}

func main() {
	s := sdk.New(manifest)
	sdk.Handle(s, "test/echo", func(ctx context.Context, req *sdk.Request[echoParams]) (echoResult, error) {
		if path := s.Config().String("count_file"); path != "" {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return echoResult{}, err
			}
			_, err = f.WriteString(req.Params.Text + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return echoResult{}, err
			}
		}
		if req.Params.Progress {
			req.Progress(0.25, "echoing")
			req.Progress(0.75, "almost")
		}
		return echoResult{Text: s.Config().String("greeting") + req.Params.Text}, nil
	})
	sdk.Handle(s, "test/bad-response", func(ctx context.Context, req *sdk.Request[struct{}]) (map[string]int, error) {
		return map[string]int{"text": 7}, nil
	})
	sdk.Handle(s, "test/sleep", func(ctx context.Context, req *sdk.Request[struct{}]) (echoResult, error) {
		req.Progress(0, fmt.Sprintf("pid %d", os.Getpid()))
		<-ctx.Done()
		return echoResult{}, ctx.Err()
	})
	sdk.Handle(s, "test/crash", func(ctx context.Context, req *sdk.Request[struct{}]) (echoResult, error) {
		os.Exit(3)
		return echoResult{}, nil
	})
	sdk.Handle(s, "test/ask-host", func(ctx context.Context, req *sdk.Request[struct{}]) (echoResult, error) {
		_, err := s.HostStatus(ctx)
		if errors.Is(err, sdk.ErrHostAPINotGranted) {
			return echoResult{}, sdk.Errorf(protocol.CodeForbidden, "host status: %v", err)
		}
		return echoResult{Text: "granted"}, err
	})
	os.Exit(s.Main())
}
