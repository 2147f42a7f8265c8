// The declaration is the point of this target; libFuzzer (-sanitize=fuzzer) defines the function.
#include "CLibFuzzer.h"
