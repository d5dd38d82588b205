package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
)

// A skill embeds its skill.json with go:embed; the examples inline it.
var manifest = []byte(`{
  "name": "greeter",
  "version": "1.0.0",
  "description": "Greets people by name.",
  "protocol": "agentmesh/0.2",
  "binary": "greeter",
  "capabilities": [{"intent": "social/greet"}],
  "permissions": {"network": false},
  "config": {"greeting": {"type": "string", "default": "Hello"}}
}`)

func ExampleNew() {
	s := sdk.New(manifest)
	m := s.Manifest()
	fmt.Println(m.Name, m.Version, m.Capabilities[0].Intent)
	fmt.Println(s.Config().String("greeting"))

	// A real skill ends main with:
	//
	//	os.Exit(s.Main())

	// Output:
	// greeter 1.0.0 social/greet
	// Hello
}

// GreetParams is what a social/greet REQUEST's parameters decode into.
type GreetParams struct {
	Name string `json:"name"`
}

// Greeting is the RESPONSE results of social/greet.
type Greeting struct {
	Text string `json:"text"`
}

func ExampleHandle() {
	s := sdk.New(manifest)
	greet := func(ctx context.Context, req *sdk.Request[GreetParams]) (Greeting, error) {
		if req.Params.Name == "" {
			return Greeting{}, sdk.Errorf(protocol.CodeMissingParameter, "name is required")
		}
		req.Progress(0.5, "choosing words") // a STATUS event
		return Greeting{Text: s.Config().String("greeting") + ", " + req.Params.Name}, nil
	}
	sdk.Handle(s, "social/greet", greet)

	// Handlers are plain functions, easy to unit test: a Request built by
	// hand works, its Progress does nothing.
	g, err := greet(context.Background(), &sdk.Request[GreetParams]{Params: GreetParams{Name: "Ada"}})
	fmt.Println(g.Text, err)
	_, err = greet(context.Background(), &sdk.Request[GreetParams]{})
	fmt.Println(err)

	// Output:
	// Hello, Ada <nil>
	// missing_parameter: name is required
}

func ExampleErrorf() {
	lookup := func(code string) error {
		if strings.ToUpper(code) != code {
			// Becomes an ERROR invalid_parameter with this message.
			return sdk.Errorf(protocol.CodeInvalidParameter, "airport code %q must be upper case", code)
		}
		// Any other error becomes internal_error; its text stays in the
		// skill's logs.
		return errors.New("catalogue not loaded")
	}

	var e *sdk.Error
	if err := lookup("cdg"); errors.As(err, &e) {
		fmt.Println(e.Code, "|", e.Message)
	}
	fmt.Println(errors.As(lookup("CDG"), &e))

	// Output:
	// invalid_parameter | airport code "cdg" must be upper case
	// false
}
