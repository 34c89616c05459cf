// Command benchgo is the Go-SDK baseline of the benchmark harness (bench/run.py): the
// same four symbols as the Python bench plugin, written against the official eKuiper Go
// SDK (github.com/lf-edge/ekuiper/sdk/go).
//
//   - benchsrc_go: emits {"name": "benchmark", "value": 42} as fast as the SDK takes it
//   - benchidle_go: emits nothing until the rule stops
//   - benchsink_go: accepts every message and drops it
//   - benchrevert_go: revert(s) returns s reversed
//
// The Go SDK at eKuiper v2.4.0 never sends sink acks, so rules with requireAck are not
// measured against it.
package main

import (
	"errors"
	"os"

	"github.com/lf-edge/ekuiper/sdk/go/api"
	sdk "github.com/lf-edge/ekuiper/sdk/go/runtime"
)

type fastSource struct{}

func (s *fastSource) Configure(_ string, _ map[string]interface{}) error { return nil }

func (s *fastSource) Open(ctx api.StreamContext, consumer chan<- api.SourceTuple, _ chan<- error) {
	message := map[string]interface{}{"name": "benchmark", "value": 42}
	for {
		select {
		case consumer <- api.NewDefaultSourceTuple(message, nil):
		case <-ctx.Done():
			return
		}
	}
}

func (s *fastSource) Close(_ api.StreamContext) error { return nil }

type idleSource struct{}

func (s *idleSource) Configure(_ string, _ map[string]interface{}) error { return nil }

func (s *idleSource) Open(ctx api.StreamContext, _ chan<- api.SourceTuple, _ chan<- error) {
	<-ctx.Done()
}

func (s *idleSource) Close(_ api.StreamContext) error { return nil }

type countSink struct{ rows uint64 }

func (s *countSink) Configure(_ map[string]interface{}) error { return nil }

func (s *countSink) Open(_ api.StreamContext) error { return nil }

func (s *countSink) Collect(_ api.StreamContext, data interface{}) error {
	if raw, ok := data.([]byte); ok && len(raw) > 0 {
		s.rows++
	}
	return nil
}

func (s *countSink) Close(_ api.StreamContext) error { return nil }

type revert struct{}

func (f *revert) Validate(args []interface{}) error {
	if len(args) != 1 {
		return errors.New("revert takes exactly one argument")
	}
	return nil
}

func (f *revert) Exec(args []interface{}, _ api.FunctionContext) (interface{}, bool) {
	text, ok := args[0].(string)
	if !ok {
		return "revert needs a string", false
	}
	runes := []rune(text)
	for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
		runes[i], runes[j] = runes[j], runes[i]
	}
	return string(runes), true
}

func (f *revert) IsAggregate() bool { return false }

func main() {
	sdk.Start(os.Args, &sdk.PluginConfig{
		Name: "benchgo",
		Sources: map[string]sdk.NewSourceFunc{
			"benchsrc_go":  func() api.Source { return &fastSource{} },
			"benchidle_go": func() api.Source { return &idleSource{} },
		},
		Sinks: map[string]sdk.NewSinkFunc{
			"benchsink_go": func() api.Sink { return &countSink{} },
		},
		Functions: map[string]sdk.NewFunctionFunc{
			"benchrevert_go": func() api.Function { return &revert{} },
		},
	})
}
