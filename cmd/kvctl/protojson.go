package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// writeProtoJSON prints an API message in kvctl's one JSON style, which
// its hand-made objects follow too: lower_snake_case field names (the
// .proto names), enum values in lower case without their type's prefix
// ("raft", not "MODE_RAFT"), bytes in base64, every field present (unset
// messages as null), and 64-bit integers as decimal strings, as the proto3
// JSON mapping writes them: hash spans run to 2^64, which readers that
// hold numbers as doubles (JavaScript, jq before 1.7) would round.
func writeProtoJSON(w io.Writer, m proto.Message) error {
	return writeJSON(w, messageJSON(m.ProtoReflect()))
}

// jsonObject is a JSON object that keeps its fields in order.
type jsonObject []jsonField

type jsonField struct {
	name  string
	value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(f.name)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func messageJSON(m protoreflect.Message) jsonObject {
	fields := m.Descriptor().Fields()
	obj := jsonObject{}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() && !m.Has(fd) {
			continue // only the member of a oneof that is set
		}
		obj = append(obj, jsonField{string(fd.Name()), fieldJSON(fd, m.Get(fd))})
	}
	return obj
}

func fieldJSON(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch {
	case fd.IsList():
		l := v.List()
		out := make([]any, l.Len())
		for i := range out {
			out[i] = singularJSON(fd, l.Get(i))
		}
		return out
	case fd.IsMap():
		out := map[string]any{}
		v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			out[k.String()] = singularJSON(fd.MapValue(), v)
			return true
		})
		return out
	}
	return singularJSON(fd, v)
}

func singularJSON(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		return enumJSON(fd.Enum(), v.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if !v.Message().IsValid() {
			return nil
		}
		return messageJSON(v.Message())
	case protoreflect.BytesKind:
		return v.Bytes() // base64
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.String()
	}
	return v.Interface()
}

// enumJSON is an enum value's name without its type's prefix, in lower
// case: Mode MODE_RAFT is "raft", MemberState MEMBER_STATE_ALIVE "alive".
// A number the descriptor does not know stays a number.
func enumJSON(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) any {
	ev := ed.Values().ByNumber(n)
	if ev == nil {
		return int32(n)
	}
	return strings.ToLower(strings.TrimPrefix(string(ev.Name()), upperSnake(string(ed.Name()))+"_"))
}

// upperSnake turns MemberState into MEMBER_STATE.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			prev := rune(s[i-1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
