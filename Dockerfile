FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY mappers ./mappers
COPY workers ./workers
COPY conformance ./conformance
COPY profiles ./profiles
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/fhir-server fhir \
    && mkdir -p /var/lib/fhir-server && chown fhir /var/lib/fhir-server
USER fhir
EXPOSE 8080
CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8080"]
