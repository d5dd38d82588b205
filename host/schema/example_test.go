package schema_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/schemas"
)

func ExampleCatalogue_Validate() {
	c, err := schema.New(schema.Options{Mode: schema.ModeStrict})
	if err != nil {
		log.Fatal(err)
	}
	// Decode the parameters once; validate the decoded value.
	params, err := schema.DecodeJSON([]byte(`{"origin":"jfk","destination":"LHR","passengers":0}`))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Validate(context.Background(), schemas.FlightSearch, params)
	var verr *schema.ValidationError
	if errors.As(err, &verr) {
		for _, fe := range verr.Errors {
			fmt.Println(fe)
		}
		p := verr.Payload()
		fmt.Println(p.Code, p.Message)
	}
	// Output:
	// /origin: does not match pattern "^[A-Z]{3}$"
	// /passengers: must be >= 1
	// schema_validation_failed payload does not match schema agentmesh/travel/flight-search/v1: 2 errors
}
