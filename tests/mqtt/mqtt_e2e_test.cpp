// Placeholder until the host core lands; replaced by daemon end-to-end tests.
#include <gtest/gtest.h>
