"""The `iresnet-onnx` command line (placeholder until the CLI lands)."""

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="iresnet-onnx")
    parser.parse_args(argv)
    parser.print_help()
    return 0
