# The two commands of the README. Everything else is `leadstream --help`.
.PHONY: demo test
demo:
	scripts/demo.sh
test:
	scripts/test.sh
