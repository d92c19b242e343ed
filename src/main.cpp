#include "cli/cli.hpp"

int main(int argc, char** argv) { return kvmgpu::cli::main(argc, argv); }
